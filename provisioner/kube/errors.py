"""Typed Kubernetes failures: the one place where the API server's answers (and the lack of
one) become errors the rest of the code decides on by type. Messages name what failed and
carry the API server's own words, never a Secret's data."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error


class KubeError(Exception):
    """A Kubernetes API call failed; ``status`` is the HTTP status when the server answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeNotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class KubeConflict(KubeError):
    """409: the object already exists, or it changed since it was read."""


class KubeForbidden(KubeError):
    """403 from RBAC or an admission check: retrying will not help until someone changes it."""


class QuotaExceeded(KubeError):
    """403 "exceeded quota": a ResourceQuota is full; it frees up as runners finish."""


class KubeInvalid(KubeError):
    """400 or 422: the object was rejected as written (the template is at fault)."""


class KubeThrottled(KubeError):
    """429: the API server asks to slow down for ``retry_after`` seconds, when it says."""

    def __init__(self, message: str, retry_after: float | None, status: int = 429) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class KubeUnavailable(KubeError):
    """No usable answer: 5xx, a timeout or a broken connection. The call may have taken
    effect."""


def kube_error(exc: ApiException | Urllib3Error | OSError, operation: str) -> KubeError:
    """The typed error for a failed call to ``operation`` (e.g. "create Pod ns/name")."""
    if not isinstance(exc, ApiException):
        return KubeUnavailable(f"{operation}: no answer from the API server ({exc})")
    status = exc.status or 0
    message = f"{operation}: {_api_message(exc)}"
    if status == 404:
        return KubeNotFound(message, status)
    if status == 409:
        return KubeConflict(message, status)
    if status == 403 and "exceeded quota" in message:
        return QuotaExceeded(message, status)
    if status in (401, 403):
        return KubeForbidden(message, status)
    if status in (400, 422):
        return KubeInvalid(message, status)
    if status == 429:
        return KubeThrottled(message, _retry_after(exc))
    # 5xx, and a status the API server is not documented to send: treated as an outage.
    return KubeUnavailable(message, status or None)


@contextlib.contextmanager
def kube_errors(operation: str) -> Iterator[None]:
    """Raises the typed error for any failure of the calls inside the block."""
    try:
        yield
    except (ApiException, Urllib3Error, OSError) as exc:
        raise kube_error(exc, operation) from None


def _api_message(exc: ApiException) -> str:
    body = exc.body if isinstance(exc.body, str | bytes) else None
    try:
        message = json.loads(body).get("message") if body else None
    except (TypeError, ValueError, AttributeError):
        message = None
    return str(message or f"{exc.status} {exc.reason}")


def _retry_after(exc: ApiException) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
