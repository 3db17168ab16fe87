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


class SlidingWindows:
    """Weighted events per key over a trailing window, as GitHub's per-minute limits count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, deque[tuple[float, int]]] = {}
        self._totals: dict[str, int] = {}

    def take(self, key: str, weight: int, limit: int, window_s: float, now: float) -> float:
        """0 when ``weight`` fits under ``limit`` (and is counted), else seconds until it would."""
        if not limit:
            return 0.0
        with self._lock:
            events = self._events.setdefault(key, deque())
            total = self._totals.get(key, 0)
            while events and events[0][0] <= now - window_s:
                total -= events.popleft()[1]
            self._totals[key] = total
            excess = total + weight - limit
            if excess <= 0:
                events.append((now, weight))
                self._totals[key] = total + weight
                return 0.0
            freed = 0
            for at, spent in events:
                freed += spent
                if freed >= excess:
                    return at + window_s - now
            return window_s  # heavier than the whole limit: never fits

    def give_back(self, key: str) -> None:
        """Forget the latest event of ``key`` (it did not happen after all)."""
        with self._lock:
            events = self._events.get(key)
            if events:
                self._totals[key] -= events.pop()[1]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._totals.clear()


def endpoint_points(method: str) -> int:
    """GitHub's secondary-limit cost of one request: 1 for reads, 5 for writes."""
    return 1 if method in ("GET", "HEAD", "OPTIONS") else 5


class SecondaryLimiter:
    """Concurrent requests, points per endpoint and generate-jitconfig calls per minute, per
    credential."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._jitconfig = SlidingWindows()
        self._points = SlidingWindows()

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
        return self._jitconfig.take(credential, 1, per_minute, 60.0, now)

    def take_points(
        self, credential: str, endpoint: str, method: str, per_minute: int, now: float
    ) -> float:
        """0 when the request's points fit in the endpoint's minute (and are counted), else the
        seconds until they would."""
        return self._points.take(
            f"{credential} {endpoint}", endpoint_points(method), per_minute, 60.0, now
        )

    def clear(self) -> None:
        self._jitconfig.clear()
        self._points.clear()
