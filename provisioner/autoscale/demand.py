"""Demand bookkeeping and the replicas it asks for; pure, the Redis store mirrors these rules.

A job only moves forward: queued -> in_progress -> completed. An event that would move it back
(a late or redelivered ``queued``, or ``in_progress`` after ``completed``) changes nothing, so
events can arrive twice and in any order and the demand still ends right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


RANK = {JobStatus.QUEUED: 0, JobStatus.IN_PROGRESS: 1, JobStatus.COMPLETED: 2}
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.IN_PROGRESS})


def advances(current: JobStatus | None, incoming: JobStatus) -> bool:
    """Whether ``incoming`` moves a job forward from ``current`` (None: never seen)."""
    return current is None or RANK[incoming] > RANK[current]


@dataclass
class Demand:
    """Jobs per scale set by status, in memory."""

    jobs: dict[int, tuple[JobStatus, str]] = field(default_factory=dict)

    def apply(self, job_id: int, status: JobStatus, scale_set: str) -> bool:
        """Record an event; True if it changed the job's status."""
        current = self.jobs.get(job_id)
        if not advances(current[0] if current else None, status):
            return False
        # A job stays with the scale set it was first matched to.
        self.jobs[job_id] = (status, current[1] if current else scale_set)
        return True

    def count(self, scale_set: str, statuses: frozenset[JobStatus] = ACTIVE) -> int:
        return sum(
            1 for status, owner in self.jobs.values() if owner == scale_set and status in statuses
        )

    def active(self, scale_set: str) -> int:
        """Jobs that need a runner now: queued or in progress."""
        return self.count(scale_set)

    def queued(self, scale_set: str) -> int:
        return self.count(scale_set, frozenset({JobStatus.QUEUED}))


def desired_replicas(demand: int, min_runners: int, max_runners: int | None) -> int:
    """Runners wanted: one per active job on top of ``min_runners`` idle spares, at most
    ``max_runners`` (ARC's rule: the warm minimum stays free for the next job)."""
    wanted = min_runners + max(0, demand)
    return wanted if max_runners is None else max(min_runners, min(wanted, max_runners))


@dataclass(frozen=True)
class ScaleDecision:
    replicas: int | None  # the value to write, None: leave spec.replicas alone
    lower_since: float | None  # since when the target has been below spec.replicas


def decide_replicas(
    current: int, target: int, lower_since: float | None, now: float, delay_s: float
) -> ScaleDecision:
    """Scale up at once; scale down only after the target has stayed lower for ``delay_s``,
    so a short lull between jobs does not tear down runners the next job would want."""
    if target >= current:
        return ScaleDecision(target if target != current else None, None)
    since = now if lower_since is None else lower_since
    if now - since >= delay_s:
        return ScaleDecision(target, None)
    return ScaleDecision(None, since)
