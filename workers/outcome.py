"""What one runner's creation came to, and what a batch of them adds up to (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

CREATED = "created"
FAILED = "failed"
# The ledger no longer wanted this runner (a redelivered task whose runner another delivery
# made, or a batch the reconciler replaced): nothing was done.
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


@dataclass(frozen=True)
class CreationResult:
    name: str
    scale_set: str
    batch_id: str
    outcome: str
    reason: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    throttled: int = 0  # answers that said "slow down" (429/403 rate limit) along the way

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
