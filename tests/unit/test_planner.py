import itertools
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.naming import runner_names
from provisioner.planner import (
    CALLS_PER_RUNNER,
    RunnerView,
    clamp_desired,
    plan_cancellations,
    plan_creations,
    plan_scale_down,
    plan_scale_up,
    plan_within_budget,
)


@pytest.mark.parametrize(
    ("replicas", "minimum", "maximum", "expected"),
    [
        (5, 0, None, 5),
        (5, 0, 3, 3),
        (1, 2, 10, 2),
        (0, 0, 0, 0),
        (-3, 0, None, 0),
        (7, 7, 7, 7),
    ],
)
def test_desired_is_replicas_within_min_and_max(replicas, minimum, maximum, expected):
    assert clamp_desired(replicas, minimum, maximum) == expected


def test_clamp_refuses_max_below_min():
    with pytest.raises(ValueError, match="maxRunners"):
        clamp_desired(3, 5, 2)


def test_clamp_refuses_negative_min():
    with pytest.raises(ValueError, match="minRunners"):
        clamp_desired(3, -1, None)


def test_scale_up_exhaustively_creates_exactly_the_shortfall():
    for desired, active, in_flight in itertools.product(range(8), repeat=3):
        missing = plan_scale_up(desired, active, in_flight)
        assert missing >= 0
        assert active + in_flight + missing == max(desired, active + in_flight)


def test_a_request_during_a_batch_plans_only_the_difference():
    assert plan_scale_up(desired=60, active_runners=20, in_flight=30) == 10


def views(spec: str) -> list[RunnerView]:
    """'i' idle, 'b' busy, 'u' unregistered; index is age rank (higher = newer)."""
    return [
        RunnerView(f"r{i}", created_at=i, busy=c == "b", registered=c != "u")
        for i, c in enumerate(spec)
    ]


def test_scale_down_removes_idle_runners_newest_first():
    plan = plan_scale_down(2, views("iiiii"))
    assert plan.remove == ("r4", "r3", "r2")
    assert plan.draining == 0


def test_scale_down_never_takes_busy_runners_and_reports_them_draining():
    plan = plan_scale_down(0, views("bibib"))
    assert set(plan.remove) == {"r1", "r3"}
    assert plan.draining == 3


def test_unregistered_runners_go_before_idle_ones():
    plan = plan_scale_down(3, views("iuiii"))
    assert plan.remove == ("r1", "r4")


def test_nothing_to_remove_at_or_below_desired():
    plan = plan_scale_down(5, views("iib"))
    assert plan.remove == () and plan.draining == 0


runner_specs = st.lists(st.tuples(st.integers(0, 1000), st.booleans(), st.booleans()), max_size=30)


@given(st.integers(-2, 35), runner_specs)
def test_scale_down_properties(desired, specs):
    runners = [
        RunnerView(f"r{i}", created_at=t, busy=busy, registered=reg)
        for i, (t, busy, reg) in enumerate(specs)
    ]
    plan = plan_scale_down(desired, runners)
    by_name = {r.name: r for r in runners}
    excess = max(0, len(runners) - max(0, desired))
    assert len(set(plan.remove)) == len(plan.remove)
    assert not any(by_name[n].busy for n in plan.remove)
    assert len(plan.remove) + plan.draining == excess
    kept_idle = [r for r in runners if not r.busy and r.name not in plan.remove]
    # Busy runners only drain when every idle one is already going.
    assert plan.draining == 0 or not kept_idle
    # No kept idle runner of the same registration state is newer than a removed one.
    for name in plan.remove:
        removed = by_name[name]
        assert not any(
            k.registered == removed.registered and k.created_at > removed.created_at
            for k in kept_idle
        )


def test_runner_names_have_the_pattern_and_are_unique():
    names = runner_names("ci-linux", 500, random.Random(7))
    assert len(set(names)) == 500
    assert all(re.fullmatch(r"ci-linux-[a-z0-9]{5}", n) for n in names)


def test_runner_names_are_deterministic_given_the_rng():
    assert runner_names("p", 20, random.Random(1)) == runner_names("p", 20, random.Random(1))
    assert runner_names("p", 20, random.Random(1)) != runner_names("p", 20, random.Random(2))


def test_runner_names_stay_unique_when_the_rng_repeats_itself():
    class Repeating(random.Random):
        def choices(self, population, k=1, **_):
            self.calls = getattr(self, "calls", 0) + 1
            return ["a"] * k if self.calls % 2 else list(population[self.calls % 36] * k)

    names = runner_names("p", 5, Repeating())
    assert len(set(names)) == 5


def test_runner_names_refuses_a_negative_count():
    with pytest.raises(ValueError, match="count"):
        runner_names("p", -1, random.Random())


def test_cancellations_take_back_the_newest_plans_first():
    planned = {"a": 10.0, "b": 30.0, "c": 20.0}
    assert plan_cancellations(planned, live=2, desired=3) == ["b", "c"]


def test_nothing_is_cancelled_within_desired():
    assert plan_cancellations({"a": 1.0}, live=2, desired=3) == []


@given(
    st.dictionaries(st.text(min_size=1, max_size=4), st.floats(0, 1e9), max_size=20),
    st.integers(0, 30),
    st.integers(0, 30),
)
def test_cancellations_bring_the_count_down_to_desired_or_cancel_every_plan(planned, live, desired):
    cancelled = plan_cancellations(planned, live, desired)
    assert set(cancelled) <= set(planned)
    left = live + len(planned) - len(cancelled)
    assert left == max(desired, live) if live + len(planned) > desired else not cancelled


def test_a_failing_scale_set_creates_one_runner_to_probe():
    assert plan_creations(50, failing=True) == 1
    assert plan_creations(0, failing=True) == 0
    assert plan_creations(50, failing=False) == 50


def test_the_budget_caps_creations_and_keeps_the_reserve():
    # 100 left, 40 kept besides, 10 creations about to call and later remove: 40 calls, 20
    # runners; 10 live runners need a removal call each: 15.
    assert plan_within_budget(100, remaining=100, reserve=40, in_flight=10, live=0) == 20
    assert plan_within_budget(100, remaining=100, reserve=40, in_flight=10, live=10) == 15
    assert plan_within_budget(5, remaining=100, reserve=40, in_flight=10, live=0) == 5
    assert plan_within_budget(5, remaining=30, reserve=40, in_flight=0, live=0) == 0
    assert plan_within_budget(7, remaining=None, reserve=40, in_flight=0, live=0) == 7


@given(
    st.integers(0, 500),
    st.integers(0, 6000),
    st.integers(0, 500),
    st.integers(0, 500),
    st.integers(0, 500),
)
def test_planned_runners_can_always_be_removed_within_the_budget(
    missing, remaining, reserve, busy, live
):
    planned = plan_within_budget(missing, remaining, reserve, busy, live)
    assert 0 <= planned <= missing
    spoken_for = reserve + live + busy * CALLS_PER_RUNNER
    assert planned * CALLS_PER_RUNNER + spoken_for <= remaining or not planned


def test_a_budget_spent_over_several_passes_still_removes_every_runner():
    # Each pass creates what the budget allows; the runners of earlier passes stay live.
    remaining, reserve, live = 60, 20, 0
    for _ in range(10):
        created = plan_within_budget(50 - live, remaining, reserve, in_flight=0, live=live)
        remaining -= created
        live += created
    assert live == 20 and remaining - reserve >= live
