"""A concurrency budget in Redis shared by every process: at most ``limit`` holders at once.

Slots are leases (a sorted set of holder ids scored by lease expiry, on Redis's clock). A
holder's process renews its leases in the background; a killed process stops renewing, and
its slots come back once the lease runs out."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import cast

import redis

from provisioner.limits.errors import RateLimitExceeded
from provisioner.limits.slot_wait import HOLD_MEMORY_SECONDS, HOLD_WEIGHT, Turnover, wait_left

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 60.0
# A limit set at run time (adaptive concurrency) is forgotten after this long without being
# set again, so a lowered limit cannot outlive the processes that lowered it.
LIMIT_OVERRIDE_SECONDS = 600
# Longest a waiter blocks for a release before trying again (a lease may expire meanwhile;
# every release wakes a waiter, so this is for leases, and each try costs a Redis call), and
# the shortest: Redis reads a BLPOP timeout under a millisecond as 0, "block forever".
_WAIT_STEP = 1.0
_WAIT_MIN = 0.01
_RELEASE_RETRY = 0.5
# How long a group refused a slot counts as waiting for one: longer than a waiter's pause
# between two tries (a creation that found no slot comes back about a second later).
GROUP_MEMORY_SECONDS = 3.0
# A waiter that left without saying so (its process died) stops counting after this long.
WAITER_MEMORY_SECONDS = 10.0

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# Refused, a holder joins the waiters (in the order they came) and learns its place, how long
# slots were held lately (on average, and the oldest held now; -1 when unknown) and the limit,
# so it can judge how long its wait will be.
_TAKE = (
    _NOW
    + """
local function refuse(limit)
  local memory = tonumber(ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - memory)
  redis.call('ZADD', KEYS[4], 'NX', now, ARGV[1])
  redis.call('PEXPIRE', KEYS[4], math.ceil(memory * 1000))
  local place = redis.call('ZRANK', KEYS[4], ARGV[1]) + 1
  local mean = tonumber(redis.call('GET', KEYS[6]))
  -- The oldest hold going on: holders whose lease ran out are dropped as they come first.
  local oldest = now
  while true do
    local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    if #first == 0 then
      break
    end
    if redis.call('ZSCORE', KEYS[1], first[1]) then
      oldest = tonumber(first[2])
      break
    end
    redis.call('ZREM', KEYS[5], first[1])
  end
  if not mean then
    return {0, place, -1, 0, limit}
  end
  return {0, place, math.floor(mean * 1000), math.floor((now - oldest) * 1000), limit}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[3])
local override = tonumber(redis.call('GET', KEYS[2]))
if override and override < limit then
  limit = override
end
local full = redis.call('ZCARD', KEYS[1]) >= limit
local group = ARGV[4]
if group == '' then
  if full then
    return refuse(limit)
  end
else
  -- Groups refused a slot lately are waiting for one. While others wait, a group at its
  -- equal part yields the next free slot to them; unchallenged, it may take them all.
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local others = redis.call('ZCARD', KEYS[3])
  if redis.call('ZSCORE', KEYS[3], group) then
    others = others - 1
  end
  local refused = full
  if not refused and others > 0 then
    local prefix = group .. '|'
    local mine = 0
    for _, holder in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
      if string.sub(holder, 1, #prefix) == prefix then
        mine = mine + 1
      end
    end
    refused = mine >= math.ceil(limit / (others + 1))
  end
  if refused then
    local remember = tonumber(ARGV[5])
    redis.call('ZADD', KEYS[3], now + remember, group)
    redis.call('PEXPIRE', KEYS[3], math.ceil(remember * 2000))
    return refuse(limit)
  end
end
redis.call('ZREM', KEYS[4], ARGV[1])
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 2000))
redis.call('ZADD', KEYS[5], now, ARGV[1])
redis.call('PEXPIRE', KEYS[5], math.ceil(lease * 2000))
return {1}
"""
)

# Only leases still held are renewed: one that ran out was handed to someone else.
_RENEW = (
    _NOW
    + """
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 2000))
return 1
"""
)

# A release wakes one waiter, if any waits (a wake-up left for nobody made a later waiter try
# in vain), and adds its slot's hold to the running mean of holds.
_RELEASE = (
    _NOW
    + """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
local waiting = redis.call('ZCARD', KEYS[5])
if waiting > 0 then
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, math.min(waiting, tonumber(ARGV[2])) - 1)
  redis.call('PEXPIRE', KEYS[2], 60000)
end
local since = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[1]))
if since then
  redis.call('ZREM', KEYS[3], ARGV[1])
  local hold = now - since
  local mean = tonumber(redis.call('GET', KEYS[4]))
  if mean then
    local weight = tonumber(ARGV[3])
    hold = mean + weight * (hold - mean)
  end
  redis.call('SET', KEYS[4], tostring(hold), 'EX', tonumber(ARGV[4]))
end
return removed
"""
)

_IN_USE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)


class RedisConcurrencyBudget:
    """``with budget.slot(timeout):`` holds one of ``limit`` slots shared by everyone using
    ``key``. Thread-safe."""

    def __init__(
        self,
        redis_client: redis.Redis,
        key: str,
        limit: int,
        lease: float = DEFAULT_LEASE_SECONDS,
        renew: bool = True,
    ):
        """``renew=False``: a slot counts for one ``lease`` at most, however long its holder
        keeps it; the budget then bounds how many holders start within a lease, not how many
        are still waiting on something slow."""
        if limit < 1:
            raise ValueError(f"limit of budget {key} must be at least 1, got {limit}")
        if lease <= 0:
            raise ValueError(f"lease of budget {key} must be positive, got {lease}")
        self.redis = redis_client
        self.key = key
        self.configured_limit = limit
        self.limit = limit
        self.lease = lease
        self._limit_key = f"{key}:limit"
        self._wake_key = f"{key}:released"
        self._groups_key = f"{key}:groups"
        self._waiting_key = f"{key}:waiting"
        self._taken_key = f"{key}:taken"
        self._hold_key = f"{key}:hold"
        self._take = redis_client.register_script(_TAKE)
        self._renew = redis_client.register_script(_RENEW)
        self._release = redis_client.register_script(_RELEASE)
        self._in_use = redis_client.register_script(_IN_USE)
        self.renew = renew
        self._held: set[str] = set()
        self._unreleased: set[str] = set()
        self._held_lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._stopped = threading.Event()
        self._wake = threading.Event()

    @contextlib.contextmanager
    def slot(self, timeout: float, group: str = "", patience: float | None = None) -> Iterator[str]:
        """Hold a slot for the block; RateLimitExceeded when none is free within ``timeout``.
        Yields the holder id. Holders naming a ``group`` share the limit fairly: while other
        groups wait for a slot, a group at its equal part leaves the next free one to them.

        With ``patience``, a holder judges by how the slots turn over: it keeps waiting
        while its slot is expected within ``patience`` (twice that in all at most) and gives
        up as soon as it is not (RateLimitExceeded with the expected wait as
        ``retry_after``); ``timeout`` applies while no slot was released lately."""
        holder = self._acquire(timeout, group, patience)
        try:
            yield holder
        finally:
            with self._held_lock:
                self._held.discard(holder)
            try:
                self._release_slot(holder)
            except redis.RedisError:
                # Redis is away: the slot is given back once it is here again, rather than
                # staying taken (by no one) for the rest of its lease.
                with self._held_lock:
                    self._unreleased.add(holder)
                    self._ensure_renewer()
                self._wake.set()
                raise

    def in_use(self) -> int:
        """Slots held now (leases not run out), by every process."""
        return int(self._in_use(keys=[self.key]))

    def current_limit(self) -> int:
        """The limit in force for every process: the configured one, or lower while an
        adaptive override holds."""
        override = cast("bytes | None", self.redis.get(self._limit_key))
        return min(self.configured_limit, int(override)) if override else self.configured_limit

    def set_limit(self, limit: int) -> None:
        """Change the limit for every process, never above the one each was built with.
        Holders beyond a lowered limit keep their slots; new ones wait. Back at its own
        limit, a process removes the override rather than pinning it there: processes
        started later with a larger limit (a raised --runner-creation-concurrency) must not
        inherit an old, smaller one."""
        if limit < 1:
            raise ValueError(f"limit of budget {self.key} must be at least 1, got {limit}")
        self.limit = min(limit, self.configured_limit)
        if self.limit == self.configured_limit:
            self.redis.delete(self._limit_key)
        else:
            self.redis.set(self._limit_key, self.limit, ex=LIMIT_OVERRIDE_SECONDS)

    def close(self) -> None:
        """Stop renewing leases (the process is done with the budget)."""
        self._stopped.set()
        self._wake.set()

    def _acquire(self, timeout: float, group: str, patience: float | None) -> str:
        if "|" in group:
            raise ValueError(f"group of budget {self.key} must not contain '|': {group!r}")
        holder = f"{group}|{uuid.uuid4().hex}" if group else uuid.uuid4().hex
        started = time.monotonic()
        # Registered before taking, so a lease taken just before a renewal round is renewed.
        if self.renew:
            with self._held_lock:
                self._held.add(holder)
                self._ensure_renewer()
        try:
            while True:
                answer = self._take(
                    keys=[
                        self.key,
                        self._limit_key,
                        self._groups_key,
                        self._waiting_key,
                        self._taken_key,
                        self._hold_key,
                    ],
                    args=[
                        holder,
                        self.lease,
                        self.configured_limit,
                        group,
                        GROUP_MEMORY_SECONDS,
                        WAITER_MEMORY_SECONDS,
                    ],
                )
                if int(answer[0]):
                    return holder
                mean_ms = int(answer[2])
                turnover = Turnover(
                    place=int(answer[1]),
                    mean_hold=mean_ms / 1000 if mean_ms >= 0 else None,
                    oldest_hold=int(answer[3]) / 1000,
                    limit=int(answer[4]),
                )
                waited = time.monotonic() - started
                left = wait_left(waited, timeout, turnover, patience)
                if left <= 0:
                    raise self._refusal(waited, turnover)
                # A release pushes onto the wake list: waiters try again at once.
                self.redis.blpop([self._wake_key], timeout=max(_WAIT_MIN, min(left, _WAIT_STEP)))
        except BaseException:
            with self._held_lock:
                self._held.discard(holder)
            with contextlib.suppress(redis.RedisError):
                self.redis.zrem(self._waiting_key, holder)
            raise

    def _refusal(self, waited: float, turnover: Turnover) -> RateLimitExceeded:
        expected = turnover.expected_wait()
        message = f"concurrency budget {self.key}: all {self.limit} slots busy for {waited:.1f}s"
        if expected is not None:
            message += f"; one expected in {expected:.1f}s"
        return RateLimitExceeded(message, retry_after=expected)

    def _release_slot(self, holder: str) -> None:
        self._release(
            keys=[self.key, self._wake_key, self._taken_key, self._hold_key, self._waiting_key],
            args=[holder, self.limit, HOLD_WEIGHT, HOLD_MEMORY_SECONDS],
        )

    def _ensure_renewer(self) -> None:
        if self._renewer is None or not self._renewer.is_alive():
            self._renewer = threading.Thread(
                target=self._renew_leases, name=f"lease-renewer:{self.key}", daemon=True
            )
            self._renewer.start()

    def _renew_leases(self) -> None:
        interval = self.lease / 3
        renewed_at = time.monotonic()
        # Slots whose release failed are retried often: until then they keep others waiting.
        while not self._stopped.is_set():
            self._wake.wait(_RELEASE_RETRY if self._unreleased else interval)
            self._wake.clear()
            if self._stopped.is_set():
                return
            self._release_unreleased()
            if time.monotonic() - renewed_at < interval:
                continue
            renewed_at = time.monotonic()
            with self._held_lock:
                held = list(self._held)
            if not held:
                continue
            try:
                self._renew(keys=[self.key], args=[self.lease, *held])
            except redis.RedisError as exc:
                # The next round tries again; a lease lasts three rounds.
                log.warning("budget %s: lease renewal failed: %s", self.key, exc)

    def _release_unreleased(self) -> None:
        with self._held_lock:
            unreleased = list(self._unreleased)
        for holder in unreleased:
            try:
                self._release_slot(holder)
            except redis.RedisError:
                return
            with self._held_lock:
                self._unreleased.discard(holder)
