"""Demand bookkeeping: jobs only move forward, so duplicates and any order end the same."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from provisioner.autoscale.demand import (
    RANK,
    Demand,
    JobStatus,
    decide_replicas,
    desired_replicas,
)

SET = "ns/linux"
statuses = st.sampled_from(list(JobStatus))


def test_a_job_counts_while_queued_or_running_and_stops_when_completed() -> None:
    demand = Demand()
    assert demand.apply(1, JobStatus.QUEUED, SET)
    assert (demand.active(SET), demand.queued(SET)) == (1, 1)
    assert demand.apply(1, JobStatus.IN_PROGRESS, SET)
    assert (demand.active(SET), demand.queued(SET)) == (1, 0)
    assert demand.apply(1, JobStatus.COMPLETED, SET)
    assert (demand.active(SET), demand.queued(SET)) == (0, 0)


def test_completed_before_in_progress_does_not_resurrect_the_job() -> None:
    demand = Demand()
    demand.apply(7, JobStatus.QUEUED, SET)
    demand.apply(7, JobStatus.COMPLETED, SET)
    assert not demand.apply(7, JobStatus.IN_PROGRESS, SET)
    assert not demand.apply(7, JobStatus.QUEUED, SET)
    assert demand.active(SET) == 0


def test_a_redelivered_event_changes_nothing() -> None:
    demand = Demand()
    assert demand.apply(3, JobStatus.QUEUED, SET)
    assert not demand.apply(3, JobStatus.QUEUED, SET)
    assert demand.active(SET) == 1


def test_a_job_stays_with_the_scale_set_it_was_first_matched_to() -> None:
    demand = Demand()
    demand.apply(5, JobStatus.QUEUED, SET)
    demand.apply(5, JobStatus.IN_PROGRESS, "ns/other")
    assert demand.active(SET) == 1
    assert demand.active("ns/other") == 0


job_histories = st.dictionaries(st.integers(1, 20), st.lists(statuses, min_size=1, max_size=6))


@given(job_histories, st.randoms())
def test_any_order_and_duplicates_end_at_each_jobs_furthest_status(
    histories: dict[int, list[JobStatus]], rng: random.Random
) -> None:
    events = [(job_id, status) for job_id, seen in histories.items() for status in seen]
    rng.shuffle(events)
    demand = Demand()
    for job_id, status in events:
        demand.apply(job_id, status, SET)
    furthest = {job_id: max(seen, key=RANK.__getitem__) for job_id, seen in histories.items()}
    assert demand.active(SET) == sum(s != JobStatus.COMPLETED for s in furthest.values())
    assert demand.queued(SET) == sum(s == JobStatus.QUEUED for s in furthest.values())


def test_desired_is_min_spares_plus_one_runner_per_active_job_within_max() -> None:
    assert desired_replicas(0, 0, 10) == 0
    assert desired_replicas(3, 0, 10) == 3
    assert desired_replicas(3, 2, 10) == 5
    assert desired_replicas(50, 2, 10) == 10
    assert desired_replicas(50, 2, None) == 52


@given(st.integers(0, 1000), st.integers(0, 100), st.integers(0, 100) | st.none())
def test_desired_stays_within_min_and_max(demand: int, low: int, high: int | None) -> None:
    if high is not None and high < low:
        low, high = high, low
    wanted = desired_replicas(demand, low, high)
    assert wanted >= low
    if high is not None:
        assert wanted <= high
        assert wanted == min(low + demand, high)


def test_scale_up_is_immediate() -> None:
    decision = decide_replicas(current=2, target=5, lower_since=100.0, now=101.0, delay_s=60)
    assert (decision.replicas, decision.lower_since) == (5, None)


def test_scale_down_waits_for_the_delay_then_goes_to_the_target() -> None:
    first = decide_replicas(current=5, target=1, lower_since=None, now=100.0, delay_s=60)
    assert (first.replicas, first.lower_since) == (None, 100.0)
    waiting = decide_replicas(current=5, target=2, lower_since=100.0, now=159.0, delay_s=60)
    assert (waiting.replicas, waiting.lower_since) == (None, 100.0)
    done = decide_replicas(current=5, target=2, lower_since=100.0, now=160.0, delay_s=60)
    assert (done.replicas, done.lower_since) == (2, None)


def test_demand_rising_again_restarts_the_delay() -> None:
    back = decide_replicas(current=5, target=5, lower_since=100.0, now=150.0, delay_s=60)
    assert (back.replicas, back.lower_since) == (None, None)


def test_no_delay_scales_down_at_once() -> None:
    assert decide_replicas(current=4, target=0, lower_since=None, now=1.0, delay_s=0).replicas == 0
