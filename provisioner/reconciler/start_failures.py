"""A per-scale-set budget for runners that fail to start (bad image, a runner that exits
before it registers): within the budget they are replaced at once; beyond it, replacements
back off exponentially, so a broken template does not loop forever."""

from __future__ import annotations

import time

import redis

WINDOW_SECONDS = 600.0
BUDGET = 3
BACKOFF_BASE = 5.0
BACKOFF_CAP = 300.0
_KEY = "provisioner:start-failures:"


def start_backoff(
    failure_times: list[float],
    now: float,
    budget: int = BUDGET,
    window: float = WINDOW_SECONDS,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
) -> float:
    """Seconds to wait before creating again, given when recent start failures happened."""
    recent = sorted(t for t in failure_times if 0 <= now - t <= window)
    over = len(recent) - budget
    if over < 0:
        return 0.0
    wait_until = recent[-1] + min(cap, base * 2**over)
    return max(0.0, wait_until - now)


class StartFailures:
    def __init__(self, client: redis.Redis, clock=time.time):
        self.redis = client
        self.clock = clock

    def record(self, scale_set: str, reason: str) -> None:
        now = self.clock()
        key = _KEY + scale_set
        pipe = self.redis.pipeline()
        pipe.zadd(key, {f"{now:.6f} {reason}": now})
        pipe.zremrangebyscore(key, 0, now - WINDOW_SECONDS)
        pipe.expire(key, int(WINDOW_SECONDS) + 60)
        pipe.execute()

    def _recent(self, scale_set: str) -> list[tuple[str, float]]:
        now = self.clock()
        entries = self.redis.zrangebyscore(
            _KEY + scale_set, now - WINDOW_SECONDS, "+inf", withscores=True
        )
        return [(m.decode() if isinstance(m, bytes) else m, s) for m, s in entries]

    def backoff_remaining(self, scale_set: str) -> float:
        return start_backoff([score for _, score in self._recent(scale_set)], self.clock())

    def describe(self, scale_set: str) -> str:
        """Why runners fail to start, once the budget is spent; empty while within it."""
        recent = self._recent(scale_set)
        if len(recent) < BUDGET:
            return ""
        last_reason = recent[-1][0].split(" ", 1)[1]
        return (
            f"{len(recent)} runners failed to start in the last {WINDOW_SECONDS / 60:.0f} "
            f"minutes (last: {last_reason}); check spec.template"
        )
