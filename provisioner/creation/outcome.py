"""What one runner's creation came to, and what a batch of them adds up to (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

CREATED = "created"
FAILED = "failed"
# The ledger no longer wanted this runner (a redelivered task whose runner another delivery
# made, a planned runner cancelled by a scale-down, a deleted scale set): nothing is left of it.
SKIPPED = "skipped"

# Failure reasons, worded for the Event a user reads ("3 failed: rate limited").
REASON_RATE_LIMITED = "rate limited"
REASON_GITHUB_UNAVAILABLE = "GitHub unavailable"
REASON_GITHUB_ERROR = "GitHub server error"
REASON_GITHUB_UNAUTHORIZED = "GitHub credentials rejected"
REASON_GITHUB_INVALID = "invalid GitHub answer"
REASON_GITHUB_SECRET = "GitHub credentials Secret unusable"
REASON_CIRCUIT_OPEN = "GitHub circuit open"
REASON_POD_REJECTED = "pod rejected by the API server"
REASON_QUOTA = "quota exceeded"
REASON_FORBIDDEN = "forbidden by RBAC"
REASON_KUBE_UNAVAILABLE = "Kubernetes API unavailable"
REASON_TIMEOUT = "timed out"
REASON_SCALE_SET_INVALID = "invalid RunnerScaleSet"
REASON_SCALE_SET_GONE = "RunnerScaleSet deleted"
REASON_REDIS_UNAVAILABLE = "Redis unavailable"
# Says what to check: the Event, lastBatch and the Degraded condition carry only the reason.
REASON_GITHUB_NOT_FOUND = (
    "GitHub scope or runner group not found (check githubConfigUrl and runnerGroupId)"
)
REASON_GITHUB_REFUSED = "GitHub refused the request"
REASON_NAME_TAKEN = "runner name taken by another scale set"
REASON_RUNNER_BUSY = "runner name held by a busy runner"
REASON_KUBE_NOT_FOUND = "Kubernetes namespace or object not found"
REASON_GITHUB_HOST_NOT_ALLOWED = "GitHub host not allowed"
REASON_INTERNAL = "internal error"
# Why a runner was skipped.
REASON_CANCELLED = "cancelled"
REASON_HELD_ELSEWHERE = "another delivery holds the runner"

# Failures that say something about the scale set itself (its spec, credentials, template or
# namespace): they spend its failure budget. The others are outages and limits of what the
# scale set depends on, which retries and backoff ride out; charging them would stall a
# healthy scale set behind someone else's trouble.
OWN_FAULT_REASONS = frozenset(
    {
        REASON_GITHUB_UNAUTHORIZED,
        REASON_GITHUB_SECRET,
        REASON_GITHUB_NOT_FOUND,
        REASON_GITHUB_REFUSED,
        REASON_GITHUB_HOST_NOT_ALLOWED,
        REASON_NAME_TAKEN,
        REASON_RUNNER_BUSY,
        REASON_POD_REJECTED,
        REASON_QUOTA,
        REASON_FORBIDDEN,
        REASON_KUBE_NOT_FOUND,
        REASON_SCALE_SET_INVALID,
        REASON_INTERNAL,
    }
)


@dataclass(frozen=True)
class CreationResult:
    name: str
    scale_set: str
    batch_id: str
    outcome: str
    reason: str | None = None  # one of the REASON_* constants: a metric label, so bounded
    attempts: int = 0
    seconds: float = 0.0
    throttled: int = 0  # answers that said "slow down" (429/403 rate limit) along the way
    detail: str = ""  # what the failing answer said: for logs and Events, never a label

    @property
    def ok(self) -> bool:
        return self.outcome == CREATED

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CreationResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class BatchSummary:
    scale_set: str
    batch_id: str
    planned: int
    created: int
    skipped: int
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.failed_by_reason.values())

    @property
    def message(self) -> str:
        """The Event text: "Created 97/100 runners; 3 failed: rate limited"."""
        text = f"Created {self.created}/{self.planned} runners"
        if self.skipped:
            text += f" ({self.skipped} already done)"
        if self.failed:
            reasons = ", ".join(
                f"{count} {reason}" if len(self.failed_by_reason) > 1 else reason
                for reason, count in sorted(self.failed_by_reason.items(), key=lambda i: -i[1])
            )
            text += f"; {self.failed} failed: {reasons}"
        return text

    def to_status(self, finished_at: str) -> dict:
        return {
            "id": self.batch_id,
            "planned": self.planned,
            "created": self.created,
            "failed": self.failed,
            "failedByReason": dict(self.failed_by_reason),
            "throttled": self.throttled,
            "seconds": round(self.seconds, 3),
            "finishedAt": finished_at,
        }


def summarize(
    results: list[CreationResult], scale_set: str, batch_id: str, seconds: float
) -> BatchSummary:
    failures = Counter(r.reason or "unknown" for r in results if r.outcome == FAILED)
    return BatchSummary(
        scale_set=scale_set,
        batch_id=batch_id,
        planned=len(results),
        created=sum(1 for r in results if r.outcome == CREATED),
        skipped=sum(1 for r in results if r.outcome == SKIPPED),
        failed_by_reason=dict(failures),
        throttled=sum(r.throttled for r in results),
        seconds=seconds,
    )


def progress_milestone(done: int, total: int, steps: int = 10) -> bool:
    """Whether ``done`` is worth a progress log line: every tenth of the batch, and the end."""
    if total <= 0 or done <= 0:
        return False
    if done == total:
        return True
    step = max(1, total // steps)
    return done % step == 0
