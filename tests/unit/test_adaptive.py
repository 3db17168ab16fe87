import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.limits import AdaptiveConcurrency, SharedAdaptiveConcurrency


def test_starts_at_the_configured_maximum():
    assert AdaptiveConcurrency(10).limit == 10


def test_throttling_halves_the_limit():
    adaptive = AdaptiveConcurrency(10)
    assert adaptive.on_throttle() == 5


def test_a_burst_of_throttles_from_one_round_cuts_only_once():
    adaptive = AdaptiveConcurrency(16)
    limits = [adaptive.on_throttle() for _ in range(8)]
    assert limits == [8] * 8


def test_throttles_in_later_rounds_cut_again_down_to_the_minimum():
    adaptive = AdaptiveConcurrency(16, limit_min=2)
    seen = []
    for _ in range(6):
        seen.append(adaptive.on_throttle())
        for _ in range(adaptive.limit):
            adaptive.on_throttle()
    assert seen[:3] == [8, 4, 2]
    assert adaptive.limit == 2


def test_successes_raise_the_limit_by_one_per_round():
    adaptive = AdaptiveConcurrency(20)
    adaptive.on_throttle()
    assert adaptive.limit == 10
    for _ in range(10):
        adaptive.on_success()
    # Each success adds 1/limit: a round of 10 adds just under one.
    assert adaptive.limit == 10
    for _ in range(11):
        adaptive.on_success()
    assert adaptive.limit == 11


def test_successes_never_pass_the_maximum():
    adaptive = AdaptiveConcurrency(4)
    for _ in range(100):
        adaptive.on_success()
    assert adaptive.limit == 4


@given(st.integers(1, 50), st.integers(1, 50), st.lists(st.sampled_from("st"), max_size=300))
def test_limit_stays_within_bounds(low, high, events):
    limit_min, limit_max = min(low, high), max(low, high)
    adaptive = AdaptiveConcurrency(limit_max, limit_min=limit_min)
    step = {"s": adaptive.on_success, "t": adaptive.on_throttle}
    for event in events:
        assert limit_min <= step[event]() <= limit_max


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit_max": 0},
        {"limit_max": 3, "limit_min": 4},
        {"limit_max": 3, "increase": 0},
        {"limit_max": 3, "decrease_factor": 1.0},
    ],
)
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        AdaptiveConcurrency(**kwargs)


class RecordingBudget:
    def __init__(self, limit: int):
        self.limit = limit
        self.writes: list[int] = []

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        self.writes.append(limit)


def test_shared_wrapper_writes_the_budget_only_when_the_limit_changes():
    budget = RecordingBudget(8)
    shared = SharedAdaptiveConcurrency(AdaptiveConcurrency(8), budget)
    shared.on_throttle()
    shared.on_throttle()
    for _ in range(20):
        shared.on_success()
    assert budget.writes[0] == 4
    assert len(budget.writes) == len(set(budget.writes))
    assert budget.limit == shared.adaptive.limit > 4
