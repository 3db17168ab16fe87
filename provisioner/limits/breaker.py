"""Circuit breaker: after ``failure_threshold`` consecutive server errors, calls fail fast for
``reset_timeout`` seconds; then one probe goes through and its outcome closes or reopens."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from provisioner.limits.errors import CircuitOpen

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    """Callers do ``before_call()`` (raises CircuitOpen while open), then report
    ``record_success()`` or ``record_failure()`` (server errors only: a 404 says nothing
    about the server's health). Thread-safe; ``clock`` is monotonic seconds."""

    def __init__(
        self,
        failure_threshold: int,
        reset_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if reset_timeout <= 0:
            raise ValueError(f"reset_timeout must be positive, got {reset_timeout}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.clock = clock
        self._state = CLOSED
        self._failures = 0
        self._since = 0.0  # when the circuit opened, or when the probe went out
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def before_call(self) -> None:
        with self._lock:
            if self._state == CLOSED:
                return
            waited = self.clock() - self._since
            # A probe that never reported (its call ended in an error that is not a server
            # error) is presumed lost after reset_timeout; the next caller probes instead.
            if waited >= self.reset_timeout:
                self._state = HALF_OPEN
                self._since = self.clock()
                return
            raise CircuitOpen(self.reset_timeout - waited)

    def record_success(self) -> None:
        with self._lock:
            self._state = CLOSED
            self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = OPEN
                self._since = self.clock()
