"""The autoscaler: job events in (webhooks or polling), spec.replicas out."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from provisioner.autoscale import metrics
from provisioner.autoscale.demand import ACTIVE, JobStatus, decide_replicas, desired_replicas
from provisioner.autoscale.events import JobEvent
from provisioner.autoscale.jobs_api import JobListingFailed, JobsClient
from provisioner.autoscale.matching import match_scale_set
from provisioner.autoscale.store import DemandStore
from provisioner.autoscale.targets import ScaleTarget, ScaleTargets
from provisioner.github.auth import InvalidCredentials, credentials_from_secret_data

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handled:
    outcome: str  # applied, stale, duplicate, unmatched, ignored
    scale_set: str | None = None


class Autoscaler:
    def __init__(
        self,
        store: DemandStore,
        targets: ScaleTargets,
        scale_down_delay_s: float = 60.0,
        jobs_client: JobsClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.targets = targets
        self.scale_down_delay_s = scale_down_delay_s
        self.jobs_client = jobs_client
        self.clock = clock
        self._sync_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: set[str] = set()

    # Events.

    def handle(self, event: JobEvent, delivery: str | None = None) -> Handled:
        """Record one job event and bring its scale set's replicas in line at once."""
        handled = self.record(event, delivery)
        # Only a new active job can raise the target; lower targets wait for the scale-down
        # delay anyway, which the periodic sync measures.
        if handled.outcome == "applied" and handled.scale_set and event.status in ACTIVE:
            try:
                self._sync_soon(handled.scale_set)
            except Exception:
                # The periodic sync writes it on its next tick; the event itself is recorded.
                log.warning("could not scale %s now; retrying on the next sync", handled.scale_set)
        return handled

    def record(self, event: JobEvent, delivery: str | None = None) -> Handled:
        """Record one job event in the demand, without touching replicas."""
        if event.status is None:
            return Handled("ignored")
        target = self._match(event)
        if target is None:
            return Handled("unmatched")
        applied = self.store.apply(
            event.job_id, event.status, target.key, event.repository, self.clock(), delivery
        )
        if applied.outcome == "applied" and event.status is JobStatus.IN_PROGRESS:
            self._observe_assignment(target, event, applied.first_seen)
        return Handled(applied.outcome, target.key)

    def _match(self, event: JobEvent) -> ScaleTarget | None:
        for fresh in (False, True):
            candidates = [t for t in self.targets.list(fresh=fresh) if t.serves(event.repository)]
            target = match_scale_set(event.labels, candidates)
            if target is not None:
                return target
        return None

    def _observe_assignment(
        self, target: ScaleTarget, event: JobEvent, first_seen: float | None
    ) -> None:
        queued_at = event.created_at or first_seen
        assigned_at = event.started_at or self.clock()
        if queued_at is not None and assigned_at >= queued_at:
            metrics.JOB_ASSIGNMENT_SECONDS.labels(scale_set=target.key).observe(
                assigned_at - queued_at
            )

    # Replicas.

    def sync(self) -> None:
        """Bring spec.replicas of every scale set in line with demand, without the jobs that
        expired with no news of them."""
        with self._sync_lock:
            for target in self.targets.list(fresh=True):
                self.store.forget_expired(target.key)
                self._sync_one(target)

    def _sync_soon(self, key: str) -> None:
        """Sync ``key`` now, or leave it to the thread syncing already: a burst of events
        becomes a few writes instead of one list and patch per event."""
        with self._pending_lock:
            self._pending.add(key)
        while self._sync_lock.acquire(blocking=False):
            try:
                with self._pending_lock:
                    keys, self._pending = self._pending, set()
                if keys:
                    for target in self.targets.list(fresh=True):
                        if target.key in keys:
                            self._sync_one(target)
            finally:
                self._sync_lock.release()
            # An event that arrived while the lock was held may have found it taken.
            with self._pending_lock:
                if not self._pending:
                    return

    def _sync_one(self, target: ScaleTarget) -> None:
        active = self.store.active(target.key)
        metrics.ACTIVE_JOBS.labels(scale_set=target.key).set(active)
        metrics.QUEUED_JOBS.labels(scale_set=target.key).set(self.store.queued(target.key))
        wanted = desired_replicas(active, target.min_runners, target.max_runners)
        decision = decide_replicas(
            target.replicas,
            wanted,
            self.store.lower_since(target.key),
            self.clock(),
            self.scale_down_delay_s,
        )
        self.store.set_lower_since(target.key, decision.lower_since)
        if decision.replicas is None:
            return
        direction = "up" if decision.replicas > target.replicas else "down"
        self.targets.scale(target, decision.replicas)
        metrics.SCALE_WRITES.labels(scale_set=target.key, direction=direction).inc()
        log.info(
            "%s: %d active jobs, replicas %d -> %d",
            target.key,
            active,
            target.replicas,
            decision.replicas,
        )

    # Polling backstop.

    def poll(self) -> int:
        """List active jobs and correct the demand: jobs GitHub lists are recorded, jobs two
        listings in a row no longer show are completed. Polled: the repository of each
        repository-scoped scale set, and every repository with jobs on record (which covers
        organization and enterprise scale sets for completions). Returns how many job states
        changed."""
        if self.jobs_client is None:
            raise RuntimeError("polling needs a JobsClient")
        targets = self.targets.list(fresh=True)
        changed = 0
        for repository, target in sorted(self._repositories(targets).items()):
            started = self.clock()
            try:
                credentials = credentials_from_secret_data(self.targets.secret_data(target))
                jobs = self.jobs_client.active_jobs(repository, credentials)
            except (JobListingFailed, InvalidCredentials) as exc:
                # Without a complete list nothing may be completed: skip this repository.
                metrics.POLLS.labels(outcome="failed").inc()
                log.warning("polling %s failed: %s", repository, exc)
                continue
            except Exception as exc:
                metrics.POLLS.labels(outcome="failed").inc()
                log.warning("polling %s failed: %s", repository, type(exc).__name__)
                continue
            metrics.POLLS.labels(outcome="ok").inc()
            changed += self._correct(repository, jobs, started)
        self.sync()
        return changed

    def _repositories(self, targets: list[ScaleTarget]) -> dict[str, ScaleTarget]:
        """Each repository to poll, with the scale set whose credentials read it."""
        chosen: dict[str, ScaleTarget] = {}
        for target in targets:
            repository = target.repository()
            if repository is not None:
                chosen.setdefault(repository, target)
        for repository in self.store.repositories_with_active_jobs():
            if repository not in chosen:
                serving = [target for target in targets if target.serves(repository)]
                if serving:
                    chosen[repository] = serving[0]
        return chosen

    def _correct(self, repository: str, jobs: list[JobEvent], listed_at: float) -> int:
        changed = 0
        listed = {job.job_id for job in jobs}
        for job in jobs:
            handled = self.record(job)
            if handled.outcome == "applied" and handled.scale_set:
                metrics.POLL_CORRECTIONS.labels(scale_set=handled.scale_set).inc()
                changed += 1
        # Jobs that changed after the listing began may not be in it yet; leave them.
        recorded = set(self.store.active_in_repository(repository, listed_at))
        for job_id in sorted(self.store.confirm_missing(repository, recorded - listed)):
            applied = self.store.apply(job_id, JobStatus.COMPLETED, "", repository, self.clock())
            if applied.outcome == "applied":
                metrics.POLL_CORRECTIONS.labels(scale_set=applied.scale_set).inc()
                changed += 1
        return changed
