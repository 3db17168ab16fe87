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

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 60.0
# A limit set at run time (adaptive concurrency) is forgotten after this long without being
# set again, so a lowered limit cannot outlive the processes that lowered it.
LIMIT_OVERRIDE_SECONDS = 600
# Longest a waiter blocks for a release before trying again (a lease may expire meanwhile),
# and the shortest: Redis reads a BLPOP timeout under a millisecond as 0, "block forever".
_WAIT_STEP = 0.25
_WAIT_MIN = 0.01
_RELEASE_RETRY = 0.5
# How long a group refused a slot counts as waiting for one: longer than a waiter's pause
# between two tries (a creation that found no slot comes back about a second later).
GROUP_MEMORY_SECONDS = 3.0

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

_TAKE = (
    _NOW
    + """
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
    return 0
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
    return 0
  end
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 2000))
return 1
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

_RELEASE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[2], 60000)
return removed
"""

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
    def slot(self, timeout: float, group: str = "") -> Iterator[str]:
        """Hold a slot for the block; RateLimitExceeded when none is free within ``timeout``.
        Yields the holder id. Holders naming a ``group`` share the limit fairly: while other
        groups wait for a slot, a group at its equal part leaves the next free one to them."""
        holder = self._acquire(timeout, group)
        try:
            yield holder
        finally:
            with self._held_lock:
                self._held.discard(holder)
            try:
                self._release(keys=[self.key, self._wake_key], args=[holder, self.limit])
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

    def _acquire(self, timeout: float, group: str) -> str:
        if "|" in group:
            raise ValueError(f"group of budget {self.key} must not contain '|': {group!r}")
        holder = f"{group}|{uuid.uuid4().hex}" if group else uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        # Registered before taking, so a lease taken just before a renewal round is renewed.
        if self.renew:
            with self._held_lock:
                self._held.add(holder)
                self._ensure_renewer()
        try:
            while True:
                if self._take(
                    keys=[self.key, self._limit_key, self._groups_key],
                    args=[holder, self.lease, self.configured_limit, group, GROUP_MEMORY_SECONDS],
                ):
                    return holder
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RateLimitExceeded(
                        f"concurrency budget {self.key}: all {self.limit} slots busy "
                        f"for {timeout:.1f}s"
                    )
                # A release pushes onto the wake list: waiters try again at once.
                self.redis.blpop([self._wake_key], timeout=max(_WAIT_MIN, min(left, _WAIT_STEP)))
        except BaseException:
            with self._held_lock:
                self._held.discard(holder)
            raise

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
                self._release(keys=[self.key, self._wake_key], args=[holder, self.limit])
            except redis.RedisError:
                return
            with self._held_lock:
                self._unreleased.discard(holder)
