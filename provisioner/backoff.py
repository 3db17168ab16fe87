"""How long to wait before the next attempt: exponential backoff with full jitter, and never
less than what the server asked for (Retry-After)."""

from __future__ import annotations

import random
from typing import Protocol

# A server's Retry-After is a floor; spreading the waiters a little above it keeps every
# worker that saw the same answer from coming back in the same instant.
RETRY_AFTER_SPREAD = 0.1
RETRY_AFTER_SPREAD_MIN = 0.05
RETRY_AFTER_SPREAD_MAX = 5.0
# 2**64 times any sane base is past every cap; stopping there avoids float overflow.
_MAX_EXPONENT = 64


class UniformSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


def retry_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: UniformSource = random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (0 for the first failure).

    Full jitter: uniform in [0, min(cap, base * 2**attempt)]. When the server named a wait
    (``retry_after``), the result is at least that, plus a small spread, even above ``cap``:
    coming back sooner only earns another refusal."""
    if attempt < 0:
        raise ValueError(f"attempt must be 0 or more, got {attempt}")
    if base <= 0 or cap <= 0:
        raise ValueError(f"base and cap must be positive, got base={base}, cap={cap}")
    ceiling = min(cap, base * 2 ** min(attempt, _MAX_EXPONENT))
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None:
        floor = max(0.0, retry_after)
        spread = min(
            RETRY_AFTER_SPREAD_MAX, max(RETRY_AFTER_SPREAD_MIN, floor * RETRY_AFTER_SPREAD)
        )
        delay = max(delay, floor + rng.uniform(0.0, spread))
    return delay
