"""Leader election through a coordination.k8s.io Lease, so only one reconciler plans batches.

The decision (take, renew or wait) is a pure function of the Lease as read; the adapter writes
with the resourceVersion it read, so two candidates racing for an expired Lease cannot both
win: the API server refuses the second write with 409.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)


class LeaseDecision(Enum):
    ACQUIRE = "acquire"  # free or expired: take it
    RENEW = "renew"  # ours: extend it
    WAIT = "wait"  # someone else holds it and it has not expired


@dataclass(frozen=True)
class LeaseView:
    holder: str | None
    renewed_at: dt.datetime | None
    duration_seconds: int


def decide(lease: LeaseView | None, identity: str, now: dt.datetime) -> LeaseDecision:
    if lease is None or not lease.holder:
        return LeaseDecision.ACQUIRE
    if lease.holder == identity:
        return LeaseDecision.RENEW
    if lease.renewed_at is None:
        return LeaseDecision.ACQUIRE
    expires = lease.renewed_at + dt.timedelta(seconds=lease.duration_seconds)
    return LeaseDecision.ACQUIRE if now >= expires else LeaseDecision.WAIT


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LostLeadership(RuntimeError):
    """This process no longer holds the leader Lease (or cannot tell that it does): it must
    not write anything a leader writes."""


def holds_lease(renewed_at: float | None, now: float, renew_deadline: float) -> bool:
    """Whether a candidate whose last successful round started at ``renewed_at`` (monotonic)
    may still act as leader at ``now``: only within ``renew_deadline`` of it, which is shorter
    than the Lease's duration, so it stops before anyone else may take the Lease over."""
    return renewed_at is not None and now - renewed_at < renew_deadline


class LeaderElector:
    """Keeps trying to hold the Lease ``namespace/name``; ``is_leader`` says whether it does.

    Leadership is given up (``on_stopped_leading``) as soon as a renewal fails, and
    ``is_leader`` turns False by itself once no round has succeeded for ``renew_deadline``
    seconds (a hung Lease read included), before the Lease could have expired for the others:
    a reconciler that cannot renew must stop writing. ``check()`` is that fence.
    """

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: int = 15,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observed_record: tuple | None = None
        self._observed_at: dt.datetime | None = None
        self.renew_deadline = lease_duration * 2 / 3
        self.clock = clock
        self._renewed_at: float | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader.is_set() and holds_lease(
            self._renewed_at, self.clock(), self.renew_deadline
        )

    def check(self) -> None:
        """The fence before a leader's write: LostLeadership unless the Lease is surely ours."""
        if not self.is_leader:
            raise LostLeadership(f"not the holder of Lease {self.namespace}/{self.name}")

    def wait_for_leadership(self, timeout: float | None = None) -> bool:
        return self._leader.wait(timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; with ``release`` the Lease is handed back so a standby takes over
        at once instead of after the lease duration."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_period + 10)
        if release and self.is_leader:
            self._release()
        self._set_leader(False)

    def try_acquire_or_renew(self) -> bool:
        """One round: read, decide, write. True while this candidate holds the Lease."""
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            lease = None
        view = None
        if lease is not None:
            spec = lease.spec
            # Expiry is judged on our own clock, from when we first saw this renewal, as
            # client-go does: the holder's clock may be skewed from ours.
            record = (spec.holder_identity, spec.renew_time)
            if record != self._observed_record:
                self._observed_record, self._observed_at = record, _now()
            view = LeaseView(
                holder=spec.holder_identity,
                renewed_at=self._observed_at,
                duration_seconds=spec.lease_duration_seconds or self.lease_duration,
            )
        decision = decide(view, self.identity, _now())
        if decision is LeaseDecision.WAIT:
            return False
        now = _now()
        spec = client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.lease_duration,
            renew_time=now,
            acquire_time=(
                lease.spec.acquire_time if decision is LeaseDecision.RENEW and lease else now
            ),
            lease_transitions=(
                (lease.spec.lease_transitions or 0) + (decision is LeaseDecision.ACQUIRE)
                if lease
                else 0
            ),
        )
        try:
            if lease is None:
                self.coordination.create_namespaced_lease(
                    self.namespace,
                    client.V1Lease(metadata=client.V1ObjectMeta(name=self.name), spec=spec),
                )
            else:
                lease.spec = spec
                self.coordination.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:  # another candidate wrote first
                return False
            raise
        return True

    def run_round(self) -> bool:
        """One round of the campaign; True while this candidate holds the Lease. The
        leadership it grants is measured from when the round started: the Lease was written
        no earlier than that."""
        started = self.clock()
        try:
            holding = self.try_acquire_or_renew()
        except Exception:
            log.exception("leader election: could not read or write Lease %s", self.name)
            holding = False
        if holding:
            self._renewed_at = started
        self._set_leader(holding)
        return holding

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_round()
            self._stop.wait(self.retry_period)

    def _set_leader(self, leader: bool) -> None:
        if leader and not self._leader.is_set():
            self._leader.set()
            log.info("became leader (%s)", self.identity)
            if self.on_started_leading:
                self.on_started_leading()
        elif not leader and self._leader.is_set():
            self._leader.clear()
            log.info("stopped leading (%s)", self.identity)
            if self.on_stopped_leading:
                self.on_stopped_leading()

    def _release(self) -> None:
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                self.coordination.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException:
            log.warning("could not release Lease %s; it expires by itself", self.name)
