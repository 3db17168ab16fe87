"""Leader election against the real API server: one leader, and a prompt takeover."""

from __future__ import annotations

import time

from kubernetes import client

from provisioner.kube.leader import LeaderElector


def elector(kube_api: client.ApiClient, namespace: str, identity: str) -> LeaderElector:
    return LeaderElector(
        kube_api, namespace, "reconciler", identity, lease_duration=2, retry_period=0.2
    )


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_two_candidates_never_lead_at_once(kube_api: client.ApiClient, namespace: str) -> None:
    a, b = elector(kube_api, namespace, "a"), elector(kube_api, namespace, "b")
    a.start()
    b.start()
    try:
        assert wait_until(lambda: a.is_leader or b.is_leader, 10)
        for _ in range(40):
            assert not (a.is_leader and b.is_leader)
            time.sleep(0.05)
    finally:
        a.stop()
        b.stop()


def test_standby_takes_over_within_the_lease_duration_when_the_leader_dies(
    kube_api: client.ApiClient, namespace: str
) -> None:
    leader = elector(kube_api, namespace, "leader")
    leader.start()
    assert leader.wait_for_leadership(10)
    standby = elector(kube_api, namespace, "standby")
    standby.start()
    try:
        time.sleep(0.6)
        assert not standby.is_leader
        # A crash: the leader stops renewing without releasing the Lease.
        leader.stop(release=False)
        died = time.monotonic()
        assert standby.wait_for_leadership(10)
        took_over = time.monotonic() - died
        assert took_over < 2 + 2, took_over  # the lease duration, and slack for a busy CI
    finally:
        standby.stop()


def test_a_released_lease_is_taken_at_once(kube_api: client.ApiClient, namespace: str) -> None:
    first = elector(kube_api, namespace, "first")
    first.start()
    assert first.wait_for_leadership(10)
    second = elector(kube_api, namespace, "second")
    second.start()
    try:
        first.stop(release=True)
        assert second.wait_for_leadership(1.5)
    finally:
        second.stop()
