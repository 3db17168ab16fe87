"""Riding out a short Redis outage: a call tried again while Redis is away, for a while."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")

RETRY_STEP_SECONDS = 0.5


def through_redis_outage(call: Callable[[], T], wait: float) -> T:
    """``call()``, tried again while Redis is away, for up to ``wait`` seconds; then the last
    RedisError is raised."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return call()
        except redis.RedisError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(RETRY_STEP_SECONDS)
