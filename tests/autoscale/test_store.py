"""The Redis demand store keeps the pure rules of ``Demand``, against a real redis-server."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.autoscale.demand import Demand, JobStatus
from provisioner.autoscale.store import DemandStore
from tests.autoscale.conftest import wait_for

SETS = ["ns/a", "ns/b"]
events = st.lists(
    st.tuples(st.integers(1, 8), st.sampled_from(list(JobStatus)), st.sampled_from(SETS)),
    max_size=30,
)


@pytest.fixture
def connection(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events, st.randoms())
def test_the_store_counts_what_the_pure_rules_count(
    connection: redis.Redis, history: list[tuple[int, JobStatus, str]], rng: random.Random
) -> None:
    connection.flushall()
    store = DemandStore(connection)
    demand = Demand()
    rng.shuffle(history)
    for job_id, status, scale_set in history:
        applied = store.apply(job_id, status, scale_set, "o/r", now=1.0)
        assert (applied.outcome == "applied") == demand.apply(job_id, status, scale_set)
    for scale_set in SETS:
        assert store.active(scale_set) == demand.active(scale_set)
        assert store.queued(scale_set) == demand.queued(scale_set)


def test_a_delivery_id_is_claimed_once(connection: redis.Redis) -> None:
    store = DemandStore(connection)
    assert store.apply(1, JobStatus.QUEUED, "ns/a", "o/r", 1.0, delivery="d-1").outcome == "applied"
    again = store.apply(2, JobStatus.QUEUED, "ns/a", "o/r", 1.0, delivery="d-1")
    assert again.outcome == "duplicate"
    assert store.active("ns/a") == 1


def test_completed_jobs_leave_the_repository_index(connection: redis.Redis) -> None:
    store = DemandStore(connection)
    store.apply(1, JobStatus.QUEUED, "ns/a", "o/r", 1.0)
    store.apply(2, JobStatus.IN_PROGRESS, "ns/a", "o/r", 5.0)
    assert store.repositories_with_active_jobs() == ["o/r"]
    assert store.active_in_repository("o/r", updated_before=2.0) == [1]
    store.apply(1, JobStatus.COMPLETED, "ns/a", "o/r", 6.0)
    store.apply(2, JobStatus.COMPLETED, "ns/a", "o/r", 6.0)
    assert store.repositories_with_active_jobs() == []


def test_missing_jobs_are_confirmed_by_the_second_listing(connection: redis.Redis) -> None:
    store = DemandStore(connection)
    assert store.confirm_missing("o/r", {1, 2}) == set()
    assert store.confirm_missing("o/r", {2, 3}) == {2}
    assert store.confirm_missing("o/r", {3}) == {3}
    assert store.confirm_missing("o/r", set()) == set()


def test_jobs_without_news_expire_and_stop_counting(connection: redis.Redis) -> None:
    store = DemandStore(connection, job_ttl_s=2)
    store.apply(1, JobStatus.QUEUED, "ns/a", "o/r", 1.0)
    store.apply(2, JobStatus.QUEUED, "ns/a", "o/r", 1.0)
    assert 0 < connection.pttl("autoscale:job:1") <= 2000
    time.sleep(1.0)
    # News of a job, even a stale event or a poll seeing it again, keeps it for another TTL.
    store.apply(2, JobStatus.IN_PROGRESS, "ns/a", "o/r", 2.0)
    assert connection.pttl("autoscale:job:2") > 1500
    time.sleep(0.5)
    assert store.apply(2, JobStatus.QUEUED, "ns/a", "o/r", 2.5).outcome == "stale"
    assert connection.pttl("autoscale:job:2") > 1500
    wait_for(lambda: not connection.exists("autoscale:job:1"), 5, "job 1 to expire")
    store.forget_expired("ns/a")
    assert (store.active("ns/a"), store.queued("ns/a")) == (1, 0)
    assert store.active_in_repository("o/r", updated_before=10.0) == [2]
    wait_for(lambda: not connection.exists("autoscale:job:2"), 5, "job 2 to expire")
    store.forget_expired("ns/a")
    assert (store.active("ns/a"), store.queued("ns/a")) == (0, 0)
    assert store.active_in_repository("o/r", updated_before=10.0) == []
    assert store.repositories_with_active_jobs() == []
    # Nothing of the two jobs is left behind.
    assert connection.keys("autoscale:*") == []


def test_indexes_of_a_scale_set_nobody_asks_about_expire_with_their_jobs(
    connection: redis.Redis,
) -> None:
    store = DemandStore(connection, job_ttl_s=1)
    store.apply(1, JobStatus.QUEUED, "ns/deleted", "o/gone", 1.0)
    wait_for(lambda: connection.keys("autoscale:*") == [], 5, "every key of the job to expire")
