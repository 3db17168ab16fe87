"""The pure take/renew/wait decision of leader election."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from provisioner.kube.leader import LeaseDecision, LeaseView, decide

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_missing_or_released_lease_is_taken() -> None:
    assert decide(None, "a", T0) is LeaseDecision.ACQUIRE
    assert decide(LeaseView(None, T0, 15), "a", T0) is LeaseDecision.ACQUIRE


def test_our_own_lease_is_renewed_even_when_late() -> None:
    late = T0 + dt.timedelta(seconds=100)
    assert decide(LeaseView("a", T0, 15), "a", late) is LeaseDecision.RENEW


@given(st.integers(min_value=1, max_value=300), st.floats(min_value=0, max_value=600))
def test_another_holder_is_respected_until_expiry(duration: int, elapsed: float) -> None:
    now = T0 + dt.timedelta(seconds=elapsed)
    decision = decide(LeaseView("b", T0, duration), "a", now)
    expected = LeaseDecision.ACQUIRE if elapsed >= duration else LeaseDecision.WAIT
    assert decision is expected
