"""Errors of the limits: a caller waited as long as it could, or the breaker is open."""

from __future__ import annotations


class RateLimitExceeded(Exception):
    """No token (or slot) within the caller's timeout. ``retry_after`` is the seconds after
    which one is expected, when known."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class CircuitOpen(Exception):
    """The circuit breaker is open: calls fail fast until ``retry_after`` seconds from now,
    when one probe is let through."""

    def __init__(self, retry_after: float):
        super().__init__(f"too many consecutive server errors; next try in {retry_after:.1f}s")
        self.retry_after = retry_after
