"""A token bucket in Redis shared by every process, and the pause GitHub's rate-limit headers
put on it. The clock is Redis's (TIME), so processes on different hosts agree."""

from __future__ import annotations

import random
import time

import redis

from provisioner.limits.errors import RateLimitExceeded

# Returns the seconds to wait as a string: Redis turns Lua numbers into integers. A wait
# that is owed is at least a microsecond, so it never reads as "taken". Times are
# written with %.6f: tostring keeps 14 digits, too few for epoch microseconds.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'paused_until')
local paused_until = tonumber(state[3]) or 0
if now < paused_until then
  return string.format('%.6f', math.max(0.000001, paused_until - now))
end
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.max(0.000001, (1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
  'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + 60) * 1000))
return string.format('%.6f', wait)
"""

# Reserves the caller's token: the bucket may go below zero, by at most ARGV[3] seconds of
# tokens, and the caller sleeps until its own token is due instead of asking again. Waiters
# that asked again all woke for the same next token, and all but one asked once more: under a
# backlog that was most of a worker's CPU. Returns {status, seconds}: 'taken' (sleep that
# long, possibly 0), 'paused' (nothing reserved; ask again after it) or 'refused' (the wait
# would pass ARGV[3]; nothing reserved). ARGV[4] tokens are taken together.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local count = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'paused_until')
local paused_until = tonumber(state[3]) or 0
if now < paused_until then
  return {'paused', string.format('%.6f', paused_until - now)}
end
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens < count then
  wait = (count - tokens) / rate
  if wait > max_wait then
    return {'refused', string.format('%.6f', wait)}
  end
end
tokens = tokens - count
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
  'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + max_wait + 60) * 1000))
return {'taken', string.format('%.6f', wait)}
"""

# A pause is only ever lengthened: two answers with different resets keep the later one.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
if until_ > current then
  redis.call('HSET', KEYS[1], 'paused_until', string.format('%.6f', until_))
  local keep_ms = math.ceil((until_ - now + 60) * 1000)
  if keep_ms > redis.call('PTTL', KEYS[1]) then
    redis.call('PEXPIRE', KEYS[1], keep_ms)
  end
end
return string.format('%.6f', math.max(until_, current) - now)
"""

_PAUSED_FOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused_until = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
return string.format('%.6f', math.max(0, paused_until - now))
"""

# Waiters for a pause to end sleep a little longer than told, at random, so they do not all
# ask at once.
_WAKE_SPREAD = 0.1


class RedisTokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up, shared by everyone using
    ``key``. Thread-safe (each call is one atomic script)."""

    def __init__(self, redis_client: redis.Redis, key: str, rate: float, burst: int):
        if rate <= 0:
            raise ValueError(f"rate of bucket {key} must be positive, got {rate}")
        if burst < 1:
            raise ValueError(f"burst of bucket {key} must be at least 1, got {burst}")
        self.key = key
        self.rate = rate
        self.burst = burst
        self._take = redis_client.register_script(_TAKE)
        self._reserve = redis_client.register_script(_RESERVE)
        self._pause = redis_client.register_script(_PAUSE)
        self._paused_for = redis_client.register_script(_PAUSED_FOR)

    def try_acquire(self) -> float:
        """Take a token: 0.0 when taken, else the seconds until one may be there."""
        return float(self._take(keys=[self.key], args=[self.rate, self.burst]))

    def acquire(self, timeout: float, count: int = 1) -> None:
        """Take ``count`` tokens, waiting up to ``timeout`` seconds; RateLimitExceeded when
        the wait would be longer (raised at once, not after sleeping in vain). The tokens are
        reserved at the first ask, so a waiter sleeps once, however many wait with it."""
        if count > self.burst:  # more than the bucket ever holds: in parts
            deadline = time.monotonic() + timeout
            for part in range(0, count, self.burst):
                left = max(0.0, deadline - time.monotonic())
                self.acquire(left, min(self.burst, count - part))
            return
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            status, seconds = self._reserve(
                keys=[self.key], args=[self.rate, self.burst, max(0.0, left), count]
            )
            wait = float(seconds)
            if status == b"taken":
                if wait > 0:
                    time.sleep(wait)
                return
            if status == b"refused" or wait > left:
                raise RateLimitExceeded(
                    f"rate limit {self.key}: no token within {timeout:.1f}s (next in {wait:.1f}s)",
                    retry_after=wait,
                )
            time.sleep(min(left, wait * (1 + random.uniform(0, _WAKE_SPREAD))))

    def paused_for(self) -> float:
        """Seconds the bucket stays paused (0 when it is not)."""
        return float(self._paused_for(keys=[self.key]))

    def pause_until(self, epoch_seconds: float) -> float:
        """Hand out no token before ``epoch_seconds`` (wall clock), to anyone. Returns the
        seconds the pause still lasts."""
        return float(self._pause(keys=[self.key], args=[epoch_seconds]))
