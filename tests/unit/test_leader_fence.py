"""The leader fence: leadership runs out by itself when no Lease round succeeds, so a
reconciler whose Lease reads hang or fail stops writing before another may take over."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client

from provisioner.kube.leader import LeaderElector, LostLeadership, holds_lease


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _elector(clock: FakeClock, rounds: list[object]) -> LeaderElector:
    """An elector whose Lease rounds answer from ``rounds`` in turn: True/False, or an
    exception to raise, or an Event to block on (a hung read) until it is set."""
    elector = LeaderElector(
        client.ApiClient(client.Configuration()),
        "ns",
        "lease",
        "me",
        lease_duration=15,
        clock=clock,
    )

    def next_round() -> bool:
        answer = rounds.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, threading.Event):
            answer.wait(10)
            return True
        return bool(answer)

    elector.try_acquire_or_renew = next_round  # type: ignore[method-assign]
    return elector


def test_holds_lease_only_within_the_renew_deadline() -> None:
    assert holds_lease(100.0, 109.9, 10.0)
    assert not holds_lease(100.0, 110.0, 10.0)
    assert not holds_lease(None, 100.0, 10.0)


def test_leadership_expires_when_rounds_keep_failing() -> None:
    clock = FakeClock()
    elector = _elector(clock, [True, ConnectionError("apiserver away")])
    assert elector.run_round()
    assert elector.is_leader
    elector.check()

    # A failed round gives leadership up at once.
    clock.now += 2
    assert not elector.run_round()
    assert not elector.is_leader
    with pytest.raises(LostLeadership):
        elector.check()


def test_leadership_expires_while_a_round_hangs() -> None:
    clock = FakeClock()
    hung = threading.Event()
    elector = _elector(clock, [True, hung])
    elector.run_round()
    assert elector.renew_deadline == 10.0

    # The next round never comes back (a Lease read with no answer): the fence closes on
    # its own once the renew deadline from the last good round has passed.
    stuck = threading.Thread(target=elector.run_round)
    stuck.start()
    try:
        clock.now += 9.9
        assert elector.is_leader
        clock.now += 0.1
        assert not elector.is_leader
        with pytest.raises(LostLeadership):
            elector.check()
    finally:
        hung.set()
        stuck.join(5)


def test_a_late_success_counts_from_when_its_round_started() -> None:
    clock = FakeClock()
    elector = _elector(clock, [True, True])
    elector.run_round()
    clock.now += 9.0

    # A round that started at t+9 and took 5 s grants leadership until t+9+10, not t+14+10.
    original = elector.try_acquire_or_renew

    def slow_round() -> bool:
        clock.now += 5.0
        return original()

    elector.try_acquire_or_renew = slow_round  # type: ignore[method-assign]
    elector.run_round()
    clock.now += 4.9
    assert elector.is_leader
    clock.now += 0.1
    assert not elector.is_leader
