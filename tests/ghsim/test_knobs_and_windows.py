"""The pure parts: latency distributions, knob validation, rate-limit windows."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.ghsim.config import KnobError, SimulatorConfig, parse_latency_distribution
from provisioner.ghsim.limits import PrimaryLimiter, SecondaryLimiter, SlidingWindows

millis = st.floats(min_value=0, max_value=10_000, allow_nan=False)


@given(low=millis, high=millis, seed=st.integers())
def test_uniform_latency_stays_within_its_bounds(low: float, high: float, seed: int) -> None:
    low, high = sorted((low, high))
    distribution = parse_latency_distribution(f"uniform:{low}:{high}")
    assert low <= distribution.sample_ms(random.Random(seed)) <= high


@given(mean=millis, sd=millis, seed=st.integers())
def test_normal_latency_is_never_negative(mean: float, sd: float, seed: int) -> None:
    assert parse_latency_distribution(f"normal:{mean}:{sd}").sample_ms(random.Random(seed)) >= 0


@pytest.mark.parametrize(
    "text", ["pareto:1", "uniform:5", "uniform:9:1", "normal:-1:2", "fixed:x", "fixed"]
)
def test_a_bad_distribution_is_refused(text: str) -> None:
    with pytest.raises(KnobError, match="latency_distribution"):
        SimulatorConfig().with_knobs({"latency_distribution": text})


def test_knobs_change_only_what_is_named() -> None:
    changed = SimulatorConfig(latency_ms=5).with_knobs({"error_rate": 0.5})
    assert (changed.latency_ms, changed.error_rate) == (5, 0.5)


def test_the_primary_window_refuses_past_the_limit_and_starts_over() -> None:
    limiter = PrimaryLimiter()
    decisions = [limiter.take("pat:1", "core", 2, 60, now=1000.0 + i) for i in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert [d.remaining for d in decisions] == [1, 0, 0]
    assert decisions[0].reset == 1060
    assert limiter.take("pat:2", "core", 2, 60, now=1003.0).allowed
    assert limiter.take("pat:1", "actions_runner_registration", 2, 60, now=1003.0).allowed
    fresh = limiter.take("pat:1", "core", 2, 60, now=1060.0)
    assert (fresh.allowed, fresh.used, fresh.reset) == (True, 1, 1120)


def test_the_registration_window_slides_over_the_last_minute() -> None:
    limiter = SecondaryLimiter()
    assert [limiter.take_jitconfig("pat:1", 2, now) for now in (0.0, 10.0)] == [0.0, 0.0]
    assert limiter.take_jitconfig("pat:1", 2, 30.0) == pytest.approx(30.0)
    assert limiter.take_jitconfig("pat:1", 2, 60.5) == 0.0
    assert limiter.take_jitconfig("pat:1", 0, 60.5) == 0.0  # 0 turns the limit off


def test_the_concurrency_limit_counts_requests_in_and_out() -> None:
    limiter = SecondaryLimiter()
    assert limiter.enter("pat:1", 1)
    assert not limiter.enter("pat:1", 1)
    assert limiter.enter("pat:2", 1)
    limiter.leave("pat:1")
    assert limiter.enter("pat:1", 1)


def test_points_slide_over_the_last_minute_with_writes_costing_five() -> None:
    limiter = SecondaryLimiter()
    endpoint = "POST /orgs/{org}/actions/runners/generate-jitconfig"
    assert limiter.take_points("pat:1", endpoint, "POST", 12, now=0.0) == 0.0
    assert limiter.take_points("pat:1", endpoint, "POST", 12, now=10.0) == 0.0
    # 10 of 12 points spent: a read fits, another write waits for the first to leave.
    assert limiter.take_points("pat:1", endpoint, "POST", 12, now=20.0) == pytest.approx(40.0)
    assert limiter.take_points("pat:1", endpoint, "GET", 12, now=20.0) == 0.0
    assert limiter.take_points("pat:1", "GET /other", "POST", 12, now=20.0) == 0.0
    assert limiter.take_points("pat:2", endpoint, "POST", 12, now=20.0) == 0.0
    assert limiter.take_points("pat:1", endpoint, "POST", 12, now=60.5) == 0.0


@given(
    weights=st.lists(st.integers(min_value=1, max_value=5), max_size=40),
    limit=st.integers(min_value=1, max_value=30),
)
def test_a_window_never_holds_more_than_its_limit(weights: list[int], limit: int) -> None:
    windows = SlidingWindows()
    taken = [w for i, w in enumerate(weights) if windows.take("k", w, limit, 60.0, float(i)) == 0]
    assert sum(taken) <= limit


def test_a_given_back_event_frees_its_place() -> None:
    windows = SlidingWindows()
    assert windows.take("scope", 1, 1, 300.0, now=0.0) == 0.0
    assert windows.take("scope", 1, 1, 300.0, now=1.0) == pytest.approx(299.0)
    windows.give_back("scope")
    assert windows.take("scope", 1, 1, 300.0, now=2.0) == 0.0


def test_the_github_com_profile_sets_its_limits_and_given_knobs_win() -> None:
    config = SimulatorConfig(profile="github.com", secondary_max_concurrent=5)
    assert (config.rate_limit, config.rate_limit_window_s) == (5000, 3600)
    assert (config.secondary_points_per_minute, config.secondary_max_concurrent) == (900, 5)
    assert (config.registrations_per_window, config.registration_window_s) == (1500, 300)
    assert (config.runners_per_group, config.registration_resource) == (10_000, "core")
    tuned = config.with_knobs({"latency_ms": 5})
    assert (tuned.secondary_points_per_minute, tuned.secondary_max_concurrent) == (900, 5)
    plain = tuned.with_knobs({"profile": "default"})
    assert plain.secondary_points_per_minute == 0 and plain.latency_ms == 5
    assert SimulatorConfig().secondary_points_per_minute == 0


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(KnobError, match="profile"):
        SimulatorConfig().with_knobs({"profile": "gitlab"})
