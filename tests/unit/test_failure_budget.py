from hypothesis import given
from hypothesis import strategies as st

from provisioner.failure_budget import (
    CREATION_FAILURES,
    START_FAILURES,
    BudgetPolicy,
    failure_backoff,
)

POLICY = START_FAILURES


def test_failures_within_the_budget_are_replaced_at_once():
    assert failure_backoff([100.0] * (POLICY.budget - 1), now=101.0, policy=POLICY) == 0.0


def test_beyond_the_budget_replacements_wait_longer_each_time():
    waits = [
        failure_backoff([100.0] * n, now=100.0, policy=POLICY)
        for n in range(POLICY.budget, POLICY.budget + 5)
    ]
    assert waits[0] > 0
    assert waits == sorted(waits) and len(set(waits)) == len(waits)


def test_old_failures_fall_out_of_the_window():
    assert failure_backoff([0.0] * 10, now=POLICY.window + 1, policy=POLICY) == 0.0


def test_wait_is_capped():
    assert failure_backoff([100.0] * 50, now=100.0, policy=POLICY) == POLICY.cap


def test_failed_creations_recover_within_half_a_minute():
    # A quota raised or a credential fixed must be noticed soon, however many failed before.
    assert failure_backoff([10.0] * 500, now=10.0, policy=CREATION_FAILURES) <= 30.0


@given(
    st.lists(st.floats(min_value=0, max_value=1000), max_size=30),
    st.floats(0, 2000),
    st.integers(1, 10),
)
def test_wait_is_never_negative_nor_above_the_cap(times, now, budget):
    policy = BudgetPolicy("t", budget=budget, window=600.0, base=5.0, cap=300.0)
    assert 0.0 <= failure_backoff(times, now, policy) <= 300.0
