"""Demand in Redis, so it survives restarts and every receiver replica shares it.

One Lua script applies an event atomically: it claims the delivery id (SET NX EX), so a
redelivered webhook counts once, and moves the job forward only (the rule of
``demand.advances``). Keys: ``job:<id>`` (hash: status, scale_set, repository, first_seen,
updated_at), ``active:<set>``, ``queued:<set>``, ``repo:<owner/repo>`` (sets of job ids),
``delivery:<id>`` and ``lower-since:<set>``.

A job that never sees its completion (a lost webhook that polling cannot see either) must not
count, nor take memory, for ever: its hash expires ``job_ttl_s`` after the last news of it (an
event, even a stale one, or a poll listing it), and so does each index it is in, from the last
news of any of its jobs. Members whose hash has expired leave the scale-set indexes in
``forget_expired`` and the repository index when it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from provisioner.autoscale.demand import JobStatus

PREFIX = "autoscale:"

_APPLY = """
local ranks = {queued = 0, in_progress = 1, completed = 2}
local p = ARGV[1]
local status, scale_set, repository = ARGV[2], ARGV[3], ARGV[4]
local job_id, now, delivery = ARGV[5], ARGV[6], ARGV[7]
local delivery_ttl, completed_ttl, job_ttl = ARGV[8], ARGV[9], ARGV[10]
if delivery ~= '' then
  if not redis.call('SET', p .. 'delivery:' .. delivery, '1', 'NX', 'EX', delivery_ttl) then
    return {'duplicate', '', ''}
  end
end
local job = p .. 'job:' .. job_id
local current = redis.call('HGET', job, 'status')
-- A job stays with the scale set and repository it was first seen with.
local owner = redis.call('HGET', job, 'scale_set') or scale_set
local repo = redis.call('HGET', job, 'repository') or repository
local active, queued = p .. 'active:' .. owner, p .. 'queued:' .. owner
local by_repo = p .. 'repo:' .. repo
local function keep_alive()
  for _, key in ipairs({job, active, queued, by_repo}) do
    redis.call('EXPIRE', key, job_ttl)
  end
end
if current and ranks[status] <= ranks[current] then
  -- News of a job still running keeps it (a poll listing it again, a late event).
  if current ~= 'completed' then
    keep_alive()
  end
  return {'stale', '', ''}
end
local first_seen = redis.call('HGET', job, 'first_seen') or now
redis.call('HSET', job, 'status', status, 'scale_set', owner, 'repository', repo,
  'first_seen', first_seen, 'updated_at', now)
if status == 'completed' then
  redis.call('SREM', active, job_id)
  redis.call('SREM', queued, job_id)
  redis.call('SREM', by_repo, job_id)
  -- The tombstone outlives any redelivery, so a late event cannot bring the job back.
  redis.call('EXPIRE', job, completed_ttl)
else
  redis.call('SADD', active, job_id)
  redis.call('SADD', by_repo, job_id)
  if status == 'queued' then
    redis.call('SADD', queued, job_id)
  else
    redis.call('SREM', queued, job_id)
  end
  keep_alive()
end
return {'applied', first_seen, owner}
"""

# Drops from each index in KEYS the members whose job hash has expired.
_FORGET_EXPIRED = """
local p = ARGV[1]
for _, index in ipairs(KEYS) do
  for _, job_id in ipairs(redis.call('SMEMBERS', index)) do
    if redis.call('EXISTS', p .. 'job:' .. job_id) == 0 then
      redis.call('SREM', index, job_id)
    end
  end
end
"""


@dataclass(frozen=True)
class Applied:
    outcome: str  # applied, stale (the job was already at or past it), duplicate (delivery seen)
    first_seen: float | None = None  # when the job was first recorded, for applied events
    scale_set: str = ""  # the scale set the job belongs to, for applied events


class DemandStore:
    def __init__(
        self,
        client: redis.Redis,
        delivery_ttl_s: int = 3 * 86_400,
        completed_ttl_s: int = 3 * 86_400,
        job_ttl_s: int = 86_400,
    ) -> None:
        self.redis = client
        self.delivery_ttl_s = delivery_ttl_s
        self.completed_ttl_s = completed_ttl_s
        self.job_ttl_s = job_ttl_s
        self._apply = client.register_script(_APPLY)
        self._forget_expired = client.register_script(_FORGET_EXPIRED)

    def apply(
        self,
        job_id: int,
        status: JobStatus,
        scale_set: str,
        repository: str,
        now: float,
        delivery: str | None = None,
    ) -> Applied:
        outcome, first_seen, owner = self._apply(
            args=[
                PREFIX,
                status.value,
                scale_set,
                repository,
                job_id,
                repr(now),
                delivery or "",
                self.delivery_ttl_s,
                self.completed_ttl_s,
                self.job_ttl_s,
            ]
        )
        return Applied(_text(outcome), float(first_seen) if first_seen else None, _text(owner))

    def forget_expired(self, scale_set: str) -> None:
        """Stop counting the jobs of ``scale_set`` that expired without news."""
        keys = [f"{PREFIX}active:{scale_set}", f"{PREFIX}queued:{scale_set}"]
        self._forget_expired(keys=keys, args=[PREFIX])

    def active(self, scale_set: str) -> int:
        return int(cast(int, self.redis.scard(f"{PREFIX}active:{scale_set}")))

    def queued(self, scale_set: str) -> int:
        return int(cast(int, self.redis.scard(f"{PREFIX}queued:{scale_set}")))

    def active_in_repository(self, repository: str, updated_before: float) -> list[int]:
        """Active jobs of ``repository`` last changed before ``updated_before``; jobs that
        expired without news leave the repository's index here."""
        key = f"{PREFIX}repo:{repository}"
        ids = sorted(int(raw) for raw in cast(set[bytes], self.redis.smembers(key)))
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(f"{PREFIX}job:{job_id}", "updated_at")
        stamps = pipe.execute()
        self._forget_expired(keys=[key], args=[PREFIX])
        return [
            job_id
            for job_id, stamp in zip(ids, stamps, strict=True)
            if stamp is not None and float(stamp) < updated_before
        ]

    def confirm_missing(self, repository: str, missing: set[int]) -> set[int]:
        """Of the jobs a listing missed, those the previous listing missed too; the rest are
        remembered for the next one. One listing can miss a job that changed state while it
        was paged through; two in a row do not."""
        key = f"{PREFIX}missing:{repository}"
        previous = {int(raw) for raw in cast(set[bytes], self.redis.smembers(key))}
        confirmed = missing & previous
        pipe = self.redis.pipeline()
        pipe.delete(key)
        if missing - confirmed:
            pipe.sadd(key, *sorted(missing - confirmed))
        pipe.execute()
        return confirmed

    def repositories_with_active_jobs(self) -> list[str]:
        """owner/repo of every repository with a job recorded as queued or in progress."""
        prefix = f"{PREFIX}repo:"
        return sorted(
            _text(key).removeprefix(prefix) for key in self.redis.scan_iter(match=prefix + "*")
        )

    def lower_since(self, scale_set: str) -> float | None:
        value = cast(bytes | None, self.redis.get(f"{PREFIX}lower-since:{scale_set}"))
        return float(value) if value else None

    def set_lower_since(self, scale_set: str, since: float | None) -> None:
        key = f"{PREFIX}lower-since:{scale_set}"
        if since is None:
            self.redis.delete(key)
        else:
            self.redis.set(key, repr(since))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
