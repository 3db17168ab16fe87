"""What a failed step of a creation means: try again (until the runner's deadline) or give up
and roll back. Decided by the error's type, with a default for every type not listed: an
answer nobody has seen before ends the creation instead of looping on it. Pure."""

from __future__ import annotations

import redis

from provisioner.creation import outcome
from provisioner.github.errors import (
    Conflict,
    GitHubError,
    GitHubUnavailable,
    InvalidGitHubResponse,
    NotFound,
    RateLimited,
    RunnerBusy,
    ServerError,
    Unauthorized,
)
from provisioner.github.hosts import HostNotAllowed
from provisioner.github.models import InvalidScope
from provisioner.kube.errors import (
    KubeError,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeThrottled,
    KubeUnavailable,
    QuotaExceeded,
)
from provisioner.kube.scaleset import GitHubSecretError, ScaleSetSpecError
from provisioner.limits import CircuitOpen, RateLimitExceeded

MAX_DETAIL_CHARS = 300


class RetryableFailure(Exception):
    """Worth another attempt after a backoff (at least ``retry_after`` seconds, when set)."""

    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        throttled: bool = False,
        detail: str = "",
    ):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.retry_after = retry_after
        self.throttled = throttled
        self.detail = detail


class PermanentFailure(Exception):
    """Another attempt would fail the same way: roll back and report ``reason``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


Failure = RetryableFailure | PermanentFailure


def classify(exc: BaseException) -> Failure:
    """The failure ``exc`` amounts to. Exhaustive: any type not named here is permanent."""
    detail = str(exc)[:MAX_DETAIL_CHARS]
    match exc:
        case RetryableFailure() | PermanentFailure():
            return exc
        # GitHub.
        case RateLimited():
            return RetryableFailure(
                outcome.REASON_RATE_LIMITED, exc.retry_after, throttled=True, detail=detail
            )
        case GitHubUnavailable():
            return RetryableFailure(outcome.REASON_GITHUB_UNAVAILABLE, detail=detail)
        case ServerError():
            return RetryableFailure(outcome.REASON_GITHUB_ERROR, detail=detail)
        case InvalidGitHubResponse():
            return RetryableFailure(outcome.REASON_GITHUB_INVALID, detail=detail)
        case CircuitOpen():
            return RetryableFailure(outcome.REASON_CIRCUIT_OPEN, exc.retry_after, detail=detail)
        case Unauthorized():
            return PermanentFailure(outcome.REASON_GITHUB_UNAUTHORIZED, detail)
        case NotFound():
            return PermanentFailure(outcome.REASON_GITHUB_NOT_FOUND, detail)
        case RunnerBusy():
            return PermanentFailure(outcome.REASON_RUNNER_BUSY, detail)
        case Conflict():
            return PermanentFailure(outcome.REASON_NAME_TAKEN, detail)
        case GitHubError():
            return PermanentFailure(outcome.REASON_GITHUB_REFUSED, detail)
        # The scale set and its Secret.
        case HostNotAllowed():
            return PermanentFailure(outcome.REASON_GITHUB_HOST_NOT_ALLOWED, detail)
        case GitHubSecretError():
            return PermanentFailure(outcome.REASON_GITHUB_SECRET, detail)
        case InvalidScope() | ScaleSetSpecError():
            return PermanentFailure(outcome.REASON_SCALE_SET_INVALID, detail)
        # Kubernetes.
        case QuotaExceeded():
            # Quotas free up as runners finish, and get raised.
            return RetryableFailure(outcome.REASON_QUOTA, detail=detail)
        case KubeThrottled():
            return RetryableFailure(
                outcome.REASON_KUBE_UNAVAILABLE, exc.retry_after, throttled=True, detail=detail
            )
        case KubeUnavailable():
            return RetryableFailure(outcome.REASON_KUBE_UNAVAILABLE, detail=detail)
        case KubeForbidden():
            return PermanentFailure(outcome.REASON_FORBIDDEN, detail)
        case KubeInvalid():
            return PermanentFailure(outcome.REASON_POD_REJECTED, detail)
        case KubeNotFound():
            return PermanentFailure(outcome.REASON_KUBE_NOT_FOUND, detail)
        case KubeError():
            return RetryableFailure(outcome.REASON_KUBE_UNAVAILABLE, detail=detail)
        # Our own limits and Redis.
        case RateLimitExceeded():
            return RetryableFailure(outcome.REASON_RATE_LIMITED, exc.retry_after, detail=detail)
        case redis.RedisError():
            return RetryableFailure(outcome.REASON_REDIS_UNAVAILABLE, detail=detail)
        case _:
            return PermanentFailure(outcome.REASON_INTERNAL, f"{type(exc).__name__}: {detail}")
