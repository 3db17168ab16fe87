"""Per-scale-set failure budgets. Within a budget, what failed is replaced at once; beyond it,
replacements back off exponentially, so a broken template (pods that never start) or a
broken credential (creations that always fail) does not loop forever."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis


@dataclass(frozen=True)
class BudgetPolicy:
    name: str
    budget: int
    window: float
    base: float
    cap: float


# Runners that fail to start (bad image, a runner that exits before it registers).
START_FAILURES = BudgetPolicy("start", budget=3, window=600.0, base=5.0, cap=300.0)
# Creations that failed after all their retries (GitHub refusing, quota, rejected template).
CREATION_FAILURES = BudgetPolicy("create", budget=5, window=120.0, base=1.0, cap=30.0)


def failure_backoff(failure_times: list[float], now: float, policy: BudgetPolicy) -> float:
    """Seconds to wait before creating again, given when recent failures happened."""
    recent = sorted(t for t in failure_times if 0 <= now - t <= policy.window)
    over = len(recent) - policy.budget
    if over < 0:
        return 0.0
    wait_until: float = recent[-1] + min(policy.cap, policy.base * 2**over)
    return max(0.0, wait_until - now)


class FailureBudget:
    def __init__(
        self, client: redis.Redis, policy: BudgetPolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = client
        self.policy = policy
        self.clock = clock

    def _key(self, scale_set: str) -> str:
        return f"provisioner:failures:{self.policy.name}:{scale_set}"

    def record(self, scale_set: str, reason: str) -> None:
        now = self.clock()
        key = self._key(scale_set)
        pipe = self.redis.pipeline()
        pipe.zadd(key, {f"{now:.6f} {reason}": now})
        pipe.zremrangebyscore(key, 0, now - self.policy.window)
        pipe.expire(key, int(self.policy.window) + 60)
        pipe.execute()

    def forget(self, scale_set: str) -> None:
        self.redis.delete(self._key(scale_set))

    def _recent(self, scale_set: str) -> list[tuple[str, float]]:
        now = self.clock()
        # redis-py types every reply as "maybe awaitable"; this client is the synchronous one.
        entries = cast(
            list[tuple[bytes | str, float]],
            self.redis.zrangebyscore(
                self._key(scale_set), now - self.policy.window, "+inf", withscores=True
            ),
        )
        return [(m.decode() if isinstance(m, bytes) else m, s) for m, s in entries]

    def backoff_remaining(self, scale_set: str) -> float:
        times = [score for _, score in self._recent(scale_set)]
        return failure_backoff(times, self.clock(), self.policy)

    def describe(self, scale_set: str) -> str:
        """The latest failures' count and reason once the budget is spent; empty within it."""
        recent = self._recent(scale_set)
        if len(recent) < self.policy.budget:
            return ""
        last_reason = recent[-1][0].split(" ", 1)[1]
        return (
            f"{len(recent)} failures in the last {self.policy.window / 60:.0f} minutes "
            f"(last: {last_reason})"
        )
