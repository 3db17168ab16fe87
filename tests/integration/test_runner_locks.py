"""Runner locks against a real redis-server: renewed while held, taken again after Redis lost
them, given up when another holder has the runner."""

from __future__ import annotations

import contextlib
import time

import pytest
import redis

from provisioner.runtime.runner_lock import RunnerLocks, lock_key

pytestmark = pytest.mark.integration

LEASE = 0.6


def test_a_held_lock_outlives_its_lease(redis_url):
    client = redis.Redis.from_url(redis_url)
    locks, other = RunnerLocks(client, lease=LEASE), RunnerLocks(client, lease=LEASE)
    with locks.hold("r-1", wait=1) as lease:
        assert lease is not None
        time.sleep(LEASE * 3)
        assert lease.held
        with other.hold("r-1", wait=0.3) as second:
            assert second is None
    assert not locks.is_held("r-1")


def test_a_lock_redis_lost_is_taken_again_by_its_holder(redis_url):
    client = redis.Redis.from_url(redis_url)
    locks = RunnerLocks(client, lease=LEASE)
    with locks.hold("r-2", wait=1) as lease:
        assert lease is not None
        client.delete(lock_key("r-2"))  # as after a restart without persistence
        time.sleep(LEASE)
        assert lease.held
        assert client.get(lock_key("r-2")) == lease.token.encode()


def test_a_lock_another_holder_took_is_lost(redis_url):
    client = redis.Redis.from_url(redis_url)
    locks = RunnerLocks(client, lease=LEASE)
    with locks.hold("r-3", wait=1) as lease:
        assert lease is not None
        client.set(lock_key("r-3"), "someone-else")
        time.sleep(LEASE)
        assert not lease.held


def test_a_released_lock_stays_free_when_a_renewal_was_under_way(redis_url):
    """A renewal pass that began while a lock was held must not take it again once it is
    released: the next delivery of that runner would wait a whole lease for nobody (seen in
    the API server outage test: one runner 14 s late)."""
    client = redis.Redis.from_url(redis_url)
    locks = RunnerLocks(client, lease=0.3)  # a renewal pass every 0.1 s
    names = [f"released-{i}" for i in range(300)]
    for _ in range(10):
        with contextlib.ExitStack() as held:
            for name in names:
                held.enter_context(locks.hold(name, wait=1))
            time.sleep(0.05)
        time.sleep(0.05)  # a pass under way when the last ones were released has ended
        taken_again = [name for name in names if client.exists(lock_key(name))]
        assert taken_again == [], f"{len(taken_again)} released locks held again"
    locks.close()
