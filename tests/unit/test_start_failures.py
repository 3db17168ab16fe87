from hypothesis import given
from hypothesis import strategies as st

from provisioner.reconciler.start_failures import BUDGET, WINDOW_SECONDS, start_backoff


def test_failures_within_the_budget_are_replaced_at_once():
    assert start_backoff([100.0] * (BUDGET - 1), now=101.0) == 0.0


def test_beyond_the_budget_replacements_wait_longer_each_time():
    waits = [start_backoff([100.0] * n, now=100.0) for n in range(BUDGET, BUDGET + 5)]
    assert waits[0] > 0
    assert waits == sorted(waits) and len(set(waits)) == len(waits)


def test_old_failures_fall_out_of_the_window():
    assert start_backoff([0.0] * 10, now=WINDOW_SECONDS + 1) == 0.0


def test_wait_is_capped():
    assert start_backoff([100.0] * 50, now=100.0, cap=300.0) == 300.0


@given(st.lists(st.floats(min_value=0, max_value=1000), max_size=30), st.floats(0, 2000))
def test_wait_is_never_negative_nor_above_the_cap(times, now):
    assert 0.0 <= start_backoff(times, now, cap=300.0) <= 300.0
