import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.backoff import RETRY_AFTER_SPREAD_MAX, retry_delay

attempts = st.integers(min_value=0, max_value=200)
bases = st.floats(min_value=0.001, max_value=10)
caps = st.floats(min_value=0.001, max_value=3600)
seeds = st.integers(min_value=0, max_value=2**32)


class Extreme:
    """Always draws one end of the interval: the bounds the jitter can reach."""

    def __init__(self, high: bool):
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@given(attempts, bases, caps, seeds)
def test_delay_stays_within_zero_and_the_capped_exponential(attempt, base, cap, seed):
    delay = retry_delay(attempt, base, cap, rng=random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2 ** min(attempt, 64))


@given(attempts, bases, caps, st.floats(min_value=0, max_value=7200), seeds)
def test_delay_is_never_shorter_than_retry_after(attempt, base, cap, retry_after, seed):
    delay = retry_delay(attempt, base, cap, retry_after=retry_after, rng=random.Random(seed))
    assert delay >= retry_after
    assert delay <= max(
        min(cap, base * 2 ** min(attempt, 64)), retry_after + RETRY_AFTER_SPREAD_MAX
    )


def test_ceiling_doubles_per_attempt_until_the_cap():
    ceilings = [retry_delay(a, 0.5, 6.0, rng=Extreme(high=True)) for a in range(6)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0]


def test_full_jitter_can_retry_at_once():
    assert retry_delay(5, 0.5, 30.0, rng=Extreme(high=False)) == 0.0


def test_waiters_told_the_same_retry_after_spread_out():
    delays = {retry_delay(0, 0.5, 30.0, retry_after=10.0, rng=random.Random(s)) for s in range(50)}
    assert len(delays) == 50
    assert min(delays) >= 10.0


def test_retry_after_above_the_cap_is_honoured():
    assert retry_delay(0, 0.5, 2.0, retry_after=60.0) >= 60.0


def test_negative_retry_after_counts_as_none_needed():
    assert 0.0 <= retry_delay(0, 1.0, 1.0, retry_after=-5.0) <= 1.0 + RETRY_AFTER_SPREAD_MAX


def test_huge_attempt_numbers_do_not_overflow():
    assert retry_delay(10_000, 1.0, 30.0, rng=Extreme(high=True)) == 30.0


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "field"),
    [(-1, 1.0, 1.0, "attempt"), (0, 0.0, 1.0, "base"), (0, 1.0, -1.0, "cap")],
)
def test_bad_arguments_name_what_is_wrong(attempt, base, cap, field):
    with pytest.raises(ValueError, match=field):
        retry_delay(attempt, base, cap)
