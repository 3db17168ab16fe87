"""Runner locks against a real redis-server: renewed while held, taken again after Redis lost
them, given up when another holder has the runner."""

from __future__ import annotations

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
