"""BoundedCache: what a long-running process keeps stays bounded in count and age, and a burst
of threads missing one key pays for one load."""

from __future__ import annotations

import threading
import time

import pytest

from provisioner.runtime.cache import BoundedCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_past_its_size_the_least_recently_used_entry_goes():
    cache: BoundedCache[str, int] = BoundedCache(size=2, ttl=60)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert len(cache) == 2
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_many_keys_never_grow_it_past_its_size():
    cache: BoundedCache[int, int] = BoundedCache(size=50, ttl=60)
    for key in range(10_000):
        cache.get_or_load(key, lambda key=key: key * 2)
    assert len(cache) == 50
    assert cache.get(9_999) == 19_998


def test_an_entry_expires_after_its_ttl_and_is_loaded_again():
    clock = FakeClock()
    cache: BoundedCache[str, str] = BoundedCache(size=10, ttl=30, clock=clock)
    loads: list[str] = []

    def load() -> str:
        loads.append("x")
        return f"value {len(loads)}"

    assert cache.get_or_load("k", load) == "value 1"
    clock.now += 29.9
    assert cache.get_or_load("k", load) == "value 1"
    clock.now += 0.1
    assert cache.get("k") is None
    assert len(cache) == 0  # the expired entry is dropped, not kept
    assert cache.get_or_load("k", load) == "value 2"
    assert len(loads) == 2


def test_being_read_does_not_extend_an_entrys_life():
    clock = FakeClock()
    cache: BoundedCache[str, int] = BoundedCache(size=10, ttl=10, clock=clock)
    cache.put("k", 1)
    for _ in range(9):
        clock.now += 1
        assert cache.get("k") == 1
    clock.now += 1
    assert cache.get("k") is None


def test_a_value_the_caller_finds_stale_is_loaded_again():
    cache: BoundedCache[str, int] = BoundedCache(size=10, ttl=60)
    cache.put("k", 1)
    assert cache.get_or_load("k", lambda: 2, fresh=lambda v: v >= 2) == 2
    assert cache.get("k") == 2


def test_concurrent_misses_of_one_key_load_it_once():
    cache: BoundedCache[str, object] = BoundedCache(size=10, ttl=60)
    calls = 0
    release = threading.Event()
    value = object()

    def slow_load() -> object:
        nonlocal calls
        calls += 1
        release.wait(5)
        return value

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_load("k", slow_load)))
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # every thread is now waiting on the one load
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == 1
    assert len(results) == 20 and all(r is value for r in results)


def test_misses_of_different_keys_do_not_wait_for_each_other():
    cache: BoundedCache[str, str] = BoundedCache(size=10, ttl=60)
    release = threading.Event()
    blocked = threading.Thread(
        target=lambda: cache.get_or_load("slow", lambda: release.wait(5) and "slow")
    )
    blocked.start()
    try:
        started = time.monotonic()
        assert cache.get_or_load("fast", lambda: "fast") == "fast"
        assert time.monotonic() - started < 1
    finally:
        release.set()
        blocked.join(5)
    assert cache.get("slow") == "slow"


def test_a_failed_load_is_not_cached_and_the_next_caller_loads():
    cache: BoundedCache[str, int] = BoundedCache(size=10, ttl=60)

    def failing() -> int:
        raise ConnectionError("API server away")

    with pytest.raises(ConnectionError):
        cache.get_or_load("k", failing)
    assert cache.get("k") is None
    assert cache.get_or_load("k", lambda: 7) == 7


def test_discard_where_drops_only_matching_keys():
    cache: BoundedCache[tuple[str, str], int] = BoundedCache(size=10, ttl=60)
    cache.put(("ns/a", "x"), 1)
    cache.put(("ns/a", "y"), 2)
    cache.put(("ns/b", "x"), 3)
    cache.discard_where(lambda key: key[0] == "ns/a")
    assert len(cache) == 1 and cache.get(("ns/b", "x")) == 3


@pytest.mark.parametrize(("size", "ttl"), [(0, 10), (10, 0), (10, -1)])
def test_a_cache_that_could_hold_nothing_is_refused(size: int, ttl: float):
    with pytest.raises(ValueError, match="cache size"):
        BoundedCache(size=size, ttl=ttl)
