"""The shared limits against a real redis-server: several processes (separate clients) share
one rate, one pause and one concurrency budget."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from provisioner.config import Settings
from provisioner.devenv.redis_server import LocalRedis
from provisioner.github import GitHubScope, RateLimitInfo
from provisioner.limits import (
    RateLimitExceeded,
    RedisConcurrencyBudget,
    RedisSlidingWindow,
    RedisTokenBucket,
)
from provisioner.runtime.credentials import CredentialRecords
from provisioner.runtime.limits import CredentialLimits, Limits

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Takes tokens from the shared bucket as fast as it hands them out, for a while, and prints
# the Redis time of each acquisition.
BUCKET_CLIENT = """
import json, sys, time, redis
from provisioner.limits import RedisTokenBucket
url, key, rate, burst, start, seconds = sys.argv[1:]
r = redis.Redis.from_url(url)
bucket = RedisTokenBucket(r, key, float(rate), int(burst))
while time.time() < float(start):
    time.sleep(0.005)
taken = []
end = float(start) + float(seconds)
while time.time() < end:
    try:
        bucket.acquire(timeout=end - time.time())
    except Exception:
        break
    seconds_, micros = r.time()
    taken.append(seconds_ + micros / 1e6)
print(json.dumps(taken))
"""

# Holds one slot of the budget and waits to be killed.
SLOT_HOLDER = """
import sys, time, redis
from provisioner.limits import RedisConcurrencyBudget
url, key, lease = sys.argv[1:]
budget = RedisConcurrencyBudget(redis.Redis.from_url(url), key, 1, lease=float(lease))
with budget.slot(timeout=10):
    print("held", flush=True)
    time.sleep(600)
"""


def _python(script: str, *args: object, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        **kwargs,
    )


@pytest.fixture
def client(redis_url: str):
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_four_processes_together_keep_to_the_bucket_rate(redis_url):
    rate, burst, seconds = 20.0, 5, 2.0
    start = time.time() + 3.0  # after every process has started
    procs = [
        _python(BUCKET_CLIENT, redis_url, "bucket:rate", rate, burst, start, seconds)
        for _ in range(4)
    ]
    per_process = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    taken = sorted(t for times in per_process for t in times)
    print(f"{len(taken)} tokens in {taken[-1] - taken[0]:.2f}s across 4 processes")
    assert all(per_process), "every process got tokens"
    # A token bucket hands out at most burst + rate * T in any span of T seconds.
    for i, first in enumerate(taken):
        in_window = sum(1 for t in taken[i:] if t - first <= 1.0)
        assert in_window <= burst + rate * 1.0 + 2
    assert len(taken) <= burst + rate * seconds + 2
    # ...and keeps handing them out: far more than the burst over the run.
    assert len(taken) >= rate * seconds * 0.5


def test_pause_blocks_every_holder_until_it_passes(redis_url):
    buckets = [
        RedisTokenBucket(redis.Redis.from_url(redis_url), "bucket:pause", 100.0, 10)
        for _ in range(4)
    ]
    resume = time.time() + 1.0
    buckets[0].pause_until(resume)
    finished: list[float] = []

    def take(bucket: RedisTokenBucket) -> None:
        bucket.acquire(timeout=10)
        finished.append(time.time())

    threads = [threading.Thread(target=take, args=(b,)) for b in buckets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)
    assert len(finished) == 4
    assert min(finished) >= resume - 0.05


def test_a_pause_longer_than_the_timeout_fails_at_once_with_the_wait(redis_url, client):
    bucket = RedisTokenBucket(client, "bucket:pause-timeout", 100.0, 10)
    bucket.pause_until(time.time() + 30)
    started = time.monotonic()
    with pytest.raises(RateLimitExceeded) as raised:
        bucket.acquire(timeout=2)
    assert time.monotonic() - started < 2
    assert 25 < raised.value.retry_after <= 30
    assert bucket.try_acquire() > 25


def test_a_pause_is_never_shortened(client):
    bucket = RedisTokenBucket(client, "bucket:lengthen", 100.0, 10)
    bucket.pause_until(time.time() + 30)
    assert bucket.pause_until(time.time() + 1) > 25


def test_a_spent_github_quota_pauses_that_credential_until_its_reset(client):
    records = CredentialRecords(client)
    spent = CredentialLimits(Settings(), client, "token-spent", records)
    other = CredentialLimits(Settings(), client, "token-other", records)
    reset = int(time.time()) + 20

    def info(remaining: int) -> RateLimitInfo:
        return RateLimitInfo(
            limit=5000, remaining=remaining, used=5000 - remaining, reset=reset, resource="core"
        )

    spent.on_rate_limit(info(remaining=3))
    assert spent.paused_for() == 0.0
    spent.on_rate_limit(info(remaining=0))
    assert 15 < spent.paused_for() <= 20
    assert 15 < spent.bucket.try_acquire() <= 20
    # Another credential's budget is its own.
    assert other.paused_for() == 0.0
    assert records.view("token-spent").remaining == 0


def test_a_budget_of_three_never_has_more_than_three_holders(redis_url):
    holding = 0
    most = 0
    seen_in_use: list[int] = []
    lock = threading.Lock()
    done: list[bool] = []

    def worker() -> None:
        nonlocal holding, most
        budget = RedisConcurrencyBudget(redis.Redis.from_url(redis_url), "budget:three", 3)
        try:
            for _ in range(3):
                with budget.slot(timeout=30):
                    with lock:
                        holding += 1
                        most = max(most, holding)
                    seen_in_use.append(budget.in_use())
                    time.sleep(0.02)
                    with lock:
                        holding -= 1
            done.append(True)
        finally:
            budget.close()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(done) == 10
    assert most == 3
    assert max(seen_in_use) <= 3


def test_a_call_counts_in_its_window_from_when_it_was_answered(client):
    """GitHub counts a call when it arrives, somewhere in its round trip: a place stamped
    only when the call left frees up too early, and the next minute's first calls can land
    inside GitHub's. Ended at the answer, the place frees a whole window after it."""
    window = RedisSlidingWindow(client, "window:answered", 2, 1.0)
    assert window.try_acquire("first") == 0.0
    assert window.try_acquire("second") == 0.0
    time.sleep(0.5)  # the calls' round trip
    window.end("first")
    window.end("second")
    time.sleep(0.6)  # a window after the calls left, half a window after their answers
    wait = window.try_acquire("third")
    assert 0.3 < wait <= 0.5, wait
    time.sleep(wait)
    assert window.try_acquire("third") == 0.0


def test_an_answered_registration_moves_its_credential_and_scope_places(client):
    settings = Settings(github_registrations_per_minute=1, github_scope_registrations=1)
    limits = Limits(settings, client)
    credential = limits.credential("pat:answered")
    scope = GitHubScope.parse("https://github.com/answered-org")
    assert limits.try_registration(credential, scope, "call") == 0.0
    time.sleep(0.3)
    limits.registration_answered(credential, scope, "call")
    # Each window now frees its place a whole window after the answer, not after the start.
    assert 59.9 < credential.registrations.try_acquire("next") <= 60.0
    assert 299.9 < limits.scope_window(scope).try_acquire("next") <= 300.0
    limits.close()


def test_a_registration_the_scope_refuses_takes_no_place_in_the_credentials_minute(client):
    """Both places or neither: a place in the credential's minute kept for a call the
    scope's cap did not let through was a generate-jitconfig call lost for a minute."""
    settings = Settings(github_registrations_per_minute=2, github_scope_registrations=1)
    limits = Limits(settings, client)
    credential = limits.credential("pat:both-or-neither")
    full = GitHubScope.parse("https://github.com/full-org")
    other = GitHubScope.parse("https://github.com/other-org")
    assert limits.try_registration(credential, full, "first") == 0.0
    assert 299 < limits.try_registration(credential, full, "refused") <= 300
    assert credential.registrations.used() == 1
    assert limits.try_registration(credential, other, "second") == 0.0
    limits.close()


def test_a_slot_is_released_when_the_block_raises(client):
    budget = RedisConcurrencyBudget(client, "budget:raise", 1)
    with pytest.raises(KeyError), budget.slot(timeout=1):
        raise KeyError("boom")
    assert budget.in_use() == 0
    with budget.slot(timeout=1):
        assert budget.in_use() == 1
    budget.close()


def test_no_free_slot_within_the_timeout_raises(client):
    budget = RedisConcurrencyBudget(client, "budget:full", 1)
    with budget.slot(timeout=1), pytest.raises(RateLimitExceeded), budget.slot(timeout=0.3):
        pass
    budget.close()


def test_a_lowered_limit_holds_for_every_process_but_never_rises_above_theirs(redis_url):
    mine = RedisConcurrencyBudget(redis.Redis.from_url(redis_url), "budget:adaptive", 3)
    theirs = RedisConcurrencyBudget(redis.Redis.from_url(redis_url), "budget:adaptive", 3)
    mine.set_limit(1)
    with theirs.slot(timeout=1), pytest.raises(RateLimitExceeded), theirs.slot(timeout=0.3):
        pass
    mine.set_limit(10)
    assert mine.limit == 3
    with (
        theirs.slot(timeout=1),
        theirs.slot(timeout=1),
        theirs.slot(timeout=1),
        pytest.raises(RateLimitExceeded),
        theirs.slot(timeout=0.3),
    ):
        pass
    mine.close()
    theirs.close()


def test_a_limit_raised_back_does_not_cap_processes_configured_higher(redis_url):
    old = RedisConcurrencyBudget(redis.Redis.from_url(redis_url), "budget:raised", 2)
    old.set_limit(1)
    old.set_limit(2)
    # Started after a configuration change, with room for four.
    new = RedisConcurrencyBudget(redis.Redis.from_url(redis_url), "budget:raised", 4)
    with new.slot(timeout=1), new.slot(timeout=1), new.slot(timeout=1), new.slot(timeout=1):
        assert new.in_use() == 4
    old.close()
    new.close()


def test_a_killed_holders_slot_comes_back_after_its_lease(redis_url, client):
    lease = 1.0
    holder = _python(SLOT_HOLDER, redis_url, "budget:lease", lease)
    try:
        assert holder.stdout.readline().strip() == "held"
        budget = RedisConcurrencyBudget(client, "budget:lease", 1, lease=lease)
        # Alive, it renews: the slot stays taken well past one lease.
        time.sleep(lease * 2)
        assert budget.in_use() == 1
        with pytest.raises(RateLimitExceeded), budget.slot(timeout=0.2):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with budget.slot(timeout=lease * 5):
            assert budget.in_use() == 1
        assert budget.in_use() == 0
        budget.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


def test_a_slot_released_while_redis_is_away_is_given_back_when_it_returns(tmp_path):
    # A Redis of its own, with persistence, stopped while a slot is held and started again.
    server = LocalRedis(tmp_path)
    server.start()
    try:
        budget = RedisConcurrencyBudget(redis.Redis.from_url(server.url), "budget:outage", 1)
        with pytest.raises(redis.RedisError), budget.slot(timeout=1):
            server.stop()
        server.start()
        # The lease has a minute left; the slot must come back long before.
        other = RedisConcurrencyBudget(redis.Redis.from_url(server.url), "budget:outage", 1)
        with other.slot(timeout=5):
            assert other.in_use() == 1
        budget.close()
        other.close()
    finally:
        server.stop()


def test_a_group_waiting_for_a_slot_gets_the_next_free_one_before_a_greedy_group(client):
    budget = RedisConcurrencyBudget(client, "budget:groups", 4)
    with contextlib.ExitStack() as big:
        # Unchallenged, one group may take every slot.
        for _ in range(4):
            big.enter_context(budget.slot(timeout=1, group="ns/big"))
        with pytest.raises(RateLimitExceeded), budget.slot(timeout=0.2, group="ns/small"):
            pass
        big.close()  # its four slots free at once; "small" has been waiting
        for _ in range(2):
            big.enter_context(budget.slot(timeout=1, group="ns/big"))
        # At its equal part (two of four) while another group waits: the free slots are not
        # its to take.
        with pytest.raises(RateLimitExceeded), budget.slot(timeout=0.3, group="ns/big"):
            pass
        with budget.slot(timeout=1, group="ns/small"), budget.slot(timeout=1, group="ns/small"):
            assert budget.in_use() == 4
    budget.close()


def _hold_and_release(budget: RedisConcurrencyBudget, seconds: float, times: int) -> None:
    """Holds make the budget's running mean of holds."""
    for _ in range(times):
        with budget.slot(timeout=1):
            time.sleep(seconds)


def test_a_waiter_with_patience_waits_for_a_slot_due_soon_and_not_for_one_due_late(client):
    budget = RedisConcurrencyBudget(client, "budget:patience", 2)
    _hold_and_release(budget, 0.2, 3)  # slots are held 0.2 s
    with contextlib.ExitStack() as held:
        for _ in range(2):
            held.enter_context(budget.slot(timeout=1))
        # The first waiter's slot is one hold away, shared by two slots: 0.1 s.
        started = time.monotonic()
        with pytest.raises(RateLimitExceeded) as refused, budget.slot(0.5, patience=0.05):
            pass
        assert time.monotonic() - started < 0.05, "gave up at once"
        assert refused.value.retry_after == pytest.approx(0.1, abs=0.05)

        # Due within the patience: waited for past the timeout, which alone would give up.
        threading.Timer(0.4, held.close).start()
        with budget.slot(timeout=0.1, patience=1.0):
            assert time.monotonic() - started >= 0.4
    budget.close()


def test_a_waiter_judges_by_a_hold_going_on_longer_than_the_past_ones(client):
    """Calls that were fast and now hang: the waiter does not sit out its patience hoping."""
    budget = RedisConcurrencyBudget(client, "budget:hung", 1)
    _hold_and_release(budget, 0.05, 3)
    with budget.slot(timeout=1):
        time.sleep(1.0)  # held 20 times as long as the mean
        started = time.monotonic()
        with pytest.raises(RateLimitExceeded) as refused, budget.slot(5.0, patience=0.5):
            pass
        assert time.monotonic() - started < 0.1
        assert refused.value.retry_after is not None and refused.value.retry_after >= 1.0
    budget.close()


def test_waiters_for_a_bucket_ask_redis_once_each_and_keep_to_its_rate(client):
    # A backlog of creations waiting for Kubernetes tokens once asked Redis again and again,
    # all at the same moment for the same next token: that was most of a worker's CPU.
    bucket = RedisTokenBucket(client, "bucket:waiters", rate=100.0, burst=1)
    client.config_resetstat()
    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        taken = list(
            pool.map(lambda _: (bucket.acquire(timeout=5), time.monotonic())[1], range(50))
        )

    calls = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    assert calls <= 50 + 5, f"{calls} calls to Redis for 50 tokens"
    # 1 token at once, then 100 a second: the 50th is due about 0.49 s later, not before.
    assert max(taken) - started >= 0.45


def test_tokens_taken_together_count_as_many(client):
    bucket = RedisTokenBucket(client, "bucket:together", rate=1.0, burst=2)
    bucket.acquire(timeout=0.1, count=2)
    with pytest.raises(RateLimitExceeded) as refused:
        bucket.acquire(timeout=0.1)
    assert refused.value.retry_after == pytest.approx(1.0, abs=0.1)


def test_more_tokens_than_the_burst_are_taken_in_parts_at_the_rate(client):
    bucket = RedisTokenBucket(client, "bucket:parts", rate=10.0, burst=2)
    started = time.monotonic()
    bucket.acquire(timeout=5, count=5)  # 2 at once, then 3 more at 10 a second
    took = time.monotonic() - started
    assert 0.25 <= took < 2.0, took  # never faster than the rate


def test_a_credential_budget_reported_out_of_order_keeps_the_lowest_of_its_window(client):
    # Workers record the headers of answers they got side by side; a slower one writes an
    # older, higher remaining after a newer one. The planner must not believe calls came back.
    records = CredentialRecords(client)
    reset = int(time.time()) + 600

    def info(remaining: int, window_reset: int = reset) -> RateLimitInfo:
        return RateLimitInfo(
            limit=100,
            remaining=remaining,
            used=100 - remaining,
            reset=window_reset,
            resource="core",
        )

    records.record_rate_limit("token-racing", info(40))
    records.record_rate_limit("token-racing", info(43))
    assert records.view("token-racing").remaining == 40
    # A new window starts over, and a late answer of the old window does not undo that.
    records.record_rate_limit("token-racing", info(99, reset + 3600))
    records.record_rate_limit("token-racing", info(38))
    view = records.view("token-racing")
    assert (view.remaining, view.reset) == (99, reset + 3600)
