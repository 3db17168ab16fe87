"""The pure policy of how long a holder refused a slot keeps waiting for one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.limits.slot_wait import Turnover, wait_left

FAST = Turnover(place=8, mean_hold=0.3, oldest_hold=0.2, limit=4)  # a slot in 0.6 s


def test_the_expected_wait_is_the_place_in_holds_shared_by_the_slots():
    assert FAST.expected_wait() == pytest.approx(0.6)


def test_a_hold_going_on_longer_than_the_mean_is_what_the_wait_is_judged_by():
    hung = Turnover(place=1, mean_hold=0.3, oldest_hold=40.0, limit=4)
    assert hung.expected_wait() == pytest.approx(10.0)


def test_before_any_release_nothing_is_expected_and_the_timeout_applies():
    starting = Turnover(place=30, mean_hold=None, oldest_hold=0.1, limit=10)
    assert starting.expected_wait() is None
    assert wait_left(0.2, 0.5, starting, patience=1.5) == pytest.approx(0.3)


def test_a_slot_expected_within_the_patience_is_waited_for_up_to_twice_it():
    assert wait_left(0.0, 0.5, FAST, patience=1.5) == pytest.approx(3.0)
    assert wait_left(2.5, 0.5, FAST, patience=1.5) == pytest.approx(0.5)
    assert wait_left(3.0, 0.5, FAST, patience=1.5) <= 0


def test_a_slot_expected_later_than_the_patience_is_not_waited_for_at_all():
    far = Turnover(place=30, mean_hold=0.6, oldest_hold=0.3, limit=10)  # 1.8 s
    assert wait_left(0.0, 0.5, far, patience=1.5) <= 0


def test_without_patience_only_the_timeout_counts():
    far = Turnover(place=300, mean_hold=10.0, oldest_hold=10.0, limit=1)
    assert wait_left(1.0, 60.0, far, patience=None) == pytest.approx(59.0)


@given(
    waited=st.floats(0, 100),
    timeout=st.floats(0, 100),
    place=st.integers(1, 1000),
    mean=st.none() | st.floats(0, 100),
    oldest=st.floats(0, 100),
    limit=st.integers(1, 1000),
    patience=st.none() | st.floats(0.01, 10),
)
def test_a_holder_never_waits_beyond_its_bounds(
    waited, timeout, place, mean, oldest, limit, patience
):
    turnover = Turnover(place, mean, oldest, limit)
    left = wait_left(waited, timeout, turnover, patience)
    expected = turnover.expected_wait()
    if patience is None or expected is None:
        assert left == pytest.approx(timeout - waited)
    else:
        # A thread is never held past twice the patience, nor for a slot not due within it.
        assert left <= max(0.0, 2 * patience - waited) + 1e-9
        if expected > patience:
            assert left <= 0
