"""What GitHub said about each credential, kept in Redis for every process: its primary budget
as its authenticated answers report it, how often it was throttled or refused, and whether
GitHub rejected it. Keyed by the credential's non-secret identity (a token's fingerprint, an
App installation), never by the secret.

A rejected credential (401) is not used again until ``recheck_after`` has passed: one probe
then tells whether the user fixed its Secret. Other credentials never notice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis

from provisioner.github import RateLimitInfo

PREFIX = "provisioner:credential:"
INDEX_KEY = "provisioner:credentials"
# What GitHub said is kept this long after it last said anything.
KEEP_SECONDS = 2 * 3600

# Processes record the headers of answers they got side by side, and a slower one may write
# after a newer answer: within one window (same reset and limit) remaining only goes down, and
# an answer of a window already over changes nothing.
_RECORD_RATE_LIMIT = """
local stored = redis.call('HMGET', KEYS[1], 'limit', 'remaining', 'reset')
local limit, remaining, reset = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local stored_reset = tonumber(stored[3])
if stored_reset and reset < stored_reset then
  return 0
end
if stored_reset == reset and tonumber(stored[1]) == limit and tonumber(stored[2]) then
  remaining = math.min(remaining, tonumber(stored[2]))
end
redis.call('HSET', KEYS[1], 'limit', limit, 'remaining', remaining, 'reset', reset,
  'resource', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[2], ARGV[6])
return 1
"""


def _key(identity: str) -> str:
    return PREFIX + identity


def _rejected_key(identity: str) -> str:
    return PREFIX + identity + ":rejected"


@dataclass(frozen=True)
class CredentialView:
    """One credential as `provisioner status` and the planner see it."""

    identity: str
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # epoch seconds
    resource: str = ""
    throttled: int = 0  # 429 and 403 rate-limit answers
    rejected: str = ""  # GitHub's words when it last rejected the credential, while it counts


class CredentialRecords:
    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self._record_rate_limit = redis_client.register_script(_RECORD_RATE_LIMIT)

    def record_rate_limit(self, identity: str, info: RateLimitInfo) -> None:
        """The x-ratelimit-* headers of one of the credential's authenticated answers."""
        self._record_rate_limit(
            keys=[_key(identity), INDEX_KEY],
            args=[
                info.limit,
                info.remaining,
                info.reset,
                info.resource or "core",
                KEEP_SECONDS,
                identity,
            ],
        )

    def record_throttled(self, identity: str) -> None:
        key = _key(identity)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(key, "throttled", 1)
        pipe.expire(key, KEEP_SECONDS)
        pipe.sadd(INDEX_KEY, identity)
        pipe.execute()

    def reject(self, identity: str, message: str, recheck_after: float) -> None:
        """GitHub rejected the credential: no call with it for ``recheck_after`` seconds."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(_rejected_key(identity), message[:300], px=int(recheck_after * 1000))
        pipe.sadd(INDEX_KEY, identity)
        pipe.execute()

    def rejected(self, identity: str) -> str:
        """GitHub's words while the credential stays rejected; "" once it may be tried."""
        raw = cast(bytes | None, self.redis.get(_rejected_key(identity)))
        return raw.decode() if isinstance(raw, bytes) else (raw or "")

    def view(self, identity: str) -> CredentialView:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(_key(identity))
        pipe.get(_rejected_key(identity))
        fields, rejected = pipe.execute()
        values = {_text(k): _text(v) for k, v in fields.items()}
        return CredentialView(
            identity=identity,
            limit=_int(values.get("limit")),
            remaining=_int(values.get("remaining")),
            reset=_float(values.get("reset")),
            resource=values.get("resource", ""),
            throttled=_int(values.get("throttled")) or 0,
            rejected=_text(rejected) if rejected else "",
        )

    def all(self) -> list[CredentialView]:
        """Every credential GitHub said something about lately; forgotten ones are pruned."""
        views = []
        for raw in sorted(cast(set[bytes], self.redis.smembers(INDEX_KEY))):
            identity = _text(raw)
            view = self.view(identity)
            if view.limit is None and not view.rejected and not view.throttled:
                self.redis.srem(INDEX_KEY, identity)
                continue
            views.append(view)
        return views


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
