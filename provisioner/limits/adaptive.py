"""Adaptive concurrency: additive increase while calls succeed, multiplicative decrease when
GitHub throttles (AIMD), within [limit_min, limit_max]. Timeouts do not cut it: a slow or lossy
network says nothing about GitHub's limits, and cutting on each one starved creations."""

from __future__ import annotations

import threading
from typing import Protocol


class AdaptiveConcurrency:
    """Pure AIMD. Each success adds ``increase / limit``, so the limit grows by ``increase``
    per round of ``limit`` calls. A throttle multiplies it by ``decrease_factor``,
    at most once per round: the other calls of the round were already in flight and report
    the same overload, which must not cut the limit again. Thread-safe."""

    def __init__(
        self,
        limit_max: int,
        limit_min: int = 1,
        increase: float = 1.0,
        decrease_factor: float = 0.5,
    ):
        if limit_min < 1 or limit_max < limit_min:
            raise ValueError(
                f"adaptive concurrency needs 1 <= limit_min <= limit_max, "
                f"got limit_min={limit_min}, limit_max={limit_max}"
            )
        if increase <= 0:
            raise ValueError(f"increase must be positive, got {increase}")
        if not 0 < decrease_factor < 1:
            raise ValueError(f"decrease_factor must be between 0 and 1, got {decrease_factor}")
        self.limit_max = limit_max
        self.limit_min = limit_min
        self.increase = increase
        self.decrease_factor = decrease_factor
        self._limit = float(limit_max)
        self._since_decrease = limit_max
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return int(self._limit)

    def on_success(self) -> int:
        with self._lock:
            self._since_decrease += 1
            self._limit = min(self.limit_max, self._limit + self.increase / self._limit)
            return self.limit

    def on_throttle(self) -> int:
        with self._lock:
            if self._since_decrease >= self.limit:
                self._limit = max(self.limit_min, self._limit * self.decrease_factor)
                self._since_decrease = 0
            else:
                self._since_decrease += 1
            return self.limit


class LimitTarget(Protocol):
    limit: int

    def set_limit(self, limit: int) -> None: ...


class SharedAdaptiveConcurrency:
    """Applies an AdaptiveConcurrency to a shared budget (RedisConcurrencyBudget), writing to
    Redis only when the whole-number limit changes."""

    def __init__(self, adaptive: AdaptiveConcurrency, budget: LimitTarget):
        self.adaptive = adaptive
        self.budget = budget

    def on_success(self) -> int:
        return self._apply(self.adaptive.on_success())

    def on_throttle(self) -> int:
        return self._apply(self.adaptive.on_throttle())

    def _apply(self, limit: int) -> int:
        if limit != self.budget.limit:
            self.budget.set_limit(limit)
        return limit
