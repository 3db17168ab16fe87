"""At most ``limit`` events in any ``window`` seconds, shared by every process through Redis:
the exact form of limits GitHub states that way (1,500 runner registrations per 5 minutes per
scope; 180 generate-jitconfig calls a minute per credential). A token bucket cannot express
them without either overshooting the window or wasting half of it. Redis's clock (TIME).

An event whose moment of counting is unknown between its start and its end (GitHub counts a
call when it arrives, somewhere within its round trip) takes its place at the start and is
moved to its end once it is over: every event then counts from no earlier than GitHub counted
it, so a place is only given while GitHub's own window has room too."""

from __future__ import annotations

import time
import uuid

import redis

from provisioner.limits.errors import RateLimitExceeded

# Takes a place for the event in every window given (KEYS, each with its limit and length in
# ARGV after the event's name) or, when any is full, in none: '0', or the seconds until the
# fullest has room.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, 0.000001, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then
  return string.format('%.6f', wait)
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[2 * i + 1]) * 1000) + 1000)
end
return '0'
"""

# Moves an event taken earlier to now, in each window that still holds it.
_END = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now, ARGV[1])
end
return 0
"""

_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
return redis.call('ZCARD', KEYS[1])
"""


class RedisSlidingWindow:
    def __init__(self, redis_client: redis.Redis, key: str, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"window {key} needs limit >= 1 and window > 0, got {limit}, {window}")
        self.key = key
        self.limit = limit
        self.window = window
        self._take = redis_client.register_script(_TAKE)
        self._count = redis_client.register_script(_COUNT)
        self._end = redis_client.register_script(_END)

    def try_acquire(self, event: str | None = None, *others: RedisSlidingWindow) -> float:
        """Count one event (named ``event``, to be ended later) here and in ``others``, or,
        when any of them is full, nowhere: 0.0 when it fits, else the seconds until it
        will (one Redis call for all)."""
        windows = (self, *others)
        args: list[str | float] = [event or uuid.uuid4().hex]
        for window in windows:
            args += [window.limit, window.window]
        return float(self._take(keys=[window.key for window in windows], args=args))

    def end(self, event: str, *others: RedisSlidingWindow) -> None:
        """The event ``event`` is over: it counts from now for a whole window, in this window
        and in ``others`` (one Redis call for all)."""
        self._end(keys=[self.key, *(window.key for window in others)], args=[event])

    def acquire(self, timeout: float) -> None:
        """Waits for room up to ``timeout`` seconds; RateLimitExceeded after."""
        deadline = time.monotonic() + timeout
        while True:
            wait = self.try_acquire()
            if wait == 0.0:
                return
            if time.monotonic() + wait > deadline:
                raise RateLimitExceeded(
                    f"{self.key}: {self.limit} per {self.window:g}s used up", retry_after=wait
                )
            time.sleep(wait)

    def used(self) -> int:
        return int(self._count(keys=[self.key], args=[self.window]))
