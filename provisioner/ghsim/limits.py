"""GitHub's rate limits: a primary window per credential and resource, and secondary limits."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class PrimaryDecision:
    allowed: bool
    limit: int
    remaining: int
    used: int
    reset: int  # epoch seconds when the window starts over
    resource: str

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-reset": str(self.reset),
            "x-ratelimit-resource": self.resource,
        }


class PrimaryLimiter:
    """Fixed windows that start at a credential's first request, as GitHub's hourly limit does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], list[float]] = {}  # key -> [window start, used]

    def take(
        self, credential: str, resource: str, limit: int, window_s: float, now: float
    ) -> PrimaryDecision:
        with self._lock:
            window = self._windows.get((credential, resource))
            if window is None or now >= window[0] + window_s:
                window = [now, 0]
                self._windows[(credential, resource)] = window
            allowed = window[1] < limit
            if allowed:
                window[1] += 1
            used = int(window[1])
            reset = math.ceil(window[0] + window_s)
        return PrimaryDecision(allowed, limit, max(0, limit - used), used, reset, resource)

    def peek(
        self, credential: str, resource: str, limit: int, window_s: float, now: float
    ) -> PrimaryDecision:
        """The state of a window without spending from it (GET /rate_limit is free)."""
        with self._lock:
            window = self._windows.get((credential, resource))
            if window is None or now >= window[0] + window_s:
                window = [now, 0]
            used = int(window[1])
            reset = math.ceil(window[0] + window_s)
        return PrimaryDecision(True, limit, max(0, limit - used), used, reset, resource)

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


class SecondaryLimiter:
    """Concurrent requests and generate-jitconfig calls per minute, per credential."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._jitconfig_times: dict[str, deque[float]] = {}

    def enter(self, credential: str, max_concurrent: int) -> bool:
        """Count a request in; False (and nothing counted) when the credential is at its limit."""
        with self._lock:
            current = self._in_flight.get(credential, 0)
            if max_concurrent and current >= max_concurrent:
                return False
            self._in_flight[credential] = current + 1
            return True

    def leave(self, credential: str) -> None:
        with self._lock:
            self._in_flight[credential] = max(0, self._in_flight.get(credential, 0) - 1)

    def take_jitconfig(self, credential: str, per_minute: int, now: float) -> float:
        """0 when allowed (and counted), else the seconds until one more call would be."""
        if not per_minute:
            return 0.0
        with self._lock:
            times = self._jitconfig_times.setdefault(credential, deque())
            while times and times[0] <= now - 60.0:
                times.popleft()
            if len(times) >= per_minute:
                return times[0] + 60.0 - now
            times.append(now)
            return 0.0

    def clear(self) -> None:
        with self._lock:
            self._jitconfig_times.clear()
