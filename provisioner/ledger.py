"""The ledger: runners planned but not yet running, per scale set, in Redis. The reconciler
counts them so a scale request during a batch plans only the difference; an entry past its
deadline (its task was lost) is left to garbage collection and planned anew.

A runner whose creation succeeded keeps its entry, marked created, until the reconciler has
seen its Pod: the reconciler counts pods from its watch, which may not have seen the Pod yet,
and the runner must count as in flight until then, never as missing.

Also the progress counters of a batch, updated by each task as it ends."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis

LEDGER_PREFIX = "provisioner:ledger:"
SCALE_SETS_KEY = "provisioner:ledger-scale-sets"
BATCH_PREFIX = "provisioner:batch:"
BATCH_TTL_SECONDS = 86400

# Forget a scale set's entry in the index only if its ledger is still empty: a record() that
# ran since must stay findable.
_FORGET_IF_EMPTY = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.call('SREM', KEYS[2], ARGV[1])
end
return 0
"""


_MARK_CREATED = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return 0
end
local entry = cjson.decode(raw)
entry['created_at'] = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
return 1
"""


_REPLACE_IF_PRESENT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class LedgerEntry:
    """One planned runner. ``scale_set`` is ScaleSet.key ("namespace/name"); ``deadline`` is
    epoch seconds after which the runner counts as lost; ``owner_uid`` is the uid of the
    RunnerScaleSet that planned it (a new resource of the same name is not its owner);
    ``created_at`` is when its creation succeeded (epoch seconds), None while it is planned."""

    scale_set: str
    name: str
    batch_id: str
    deadline: float
    owner_uid: str = ""
    created_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerEntry:
        try:
            return cls(
                scale_set=str(data["scale_set"]),
                name=str(data["name"]),
                batch_id=str(data["batch_id"]),
                deadline=float(data["deadline"]),
                owner_uid=str(data.get("owner_uid") or ""),
                created_at=_optional_float(data.get("created_at")),
            )
        except KeyError as exc:
            raise ValueError(f"ledger entry has no {exc.args[0]}: {data!r}") from None
        except (TypeError, ValueError):
            raise ValueError(
                f"ledger entry has a deadline that is not a number: {data!r}"
            ) from None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _ledger_key(scale_set: str) -> str:
    return LEDGER_PREFIX + scale_set


class Ledger:
    """One Redis hash per scale set (runner name -> entry JSON) and a set of scale sets."""

    def __init__(self, redis_client: redis.Redis):
        self.redis = redis_client
        self._forget_if_empty = redis_client.register_script(_FORGET_IF_EMPTY)
        self._mark_created = redis_client.register_script(_MARK_CREATED)

    def record(self, entries: list[LedgerEntry]) -> None:
        """Write all entries at once (one transaction): none or all are seen."""
        if not entries:
            return
        pipe = self.redis.pipeline(transaction=True)
        for entry in entries:
            pipe.hset(_ledger_key(entry.scale_set), entry.name, json.dumps(entry.to_dict()))
            pipe.sadd(SCALE_SETS_KEY, entry.scale_set)
        pipe.execute()

    def in_flight(self, scale_set: str, now: float) -> list[LedgerEntry]:
        """The scale set's entries whose deadline has not passed at ``now``."""
        return [e for e in self._entries(scale_set) if e.deadline > now]

    def is_in_flight(self, scale_set: str, name: str, now: float) -> bool:
        """Whether ``name`` is planned, not created yet and not past its deadline: one field
        read, so a creation's check costs the same in a batch of 10 as in one of 1000."""
        raw = cast(bytes | None, self.redis.hget(_ledger_key(scale_set), name))
        if raw is None:
            return False
        entry = LedgerEntry.from_dict(json.loads(raw))
        return entry.created_at is None and entry.deadline > now

    def entries(self, scale_set: str) -> list[LedgerEntry]:
        """Every entry of the scale set, whatever its deadline."""
        return self._entries(scale_set)

    def forget_scale_set(self, scale_set: str) -> None:
        """Drops the whole ledger of a scale set that is gone."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(_ledger_key(scale_set))
        pipe.srem(SCALE_SETS_KEY, scale_set)
        pipe.execute()

    def expired(self, now: float) -> list[LedgerEntry]:
        """Entries past their deadline at ``now``, in every scale set."""
        found: list[LedgerEntry] = []
        for raw in sorted(cast(set[bytes | str], self.redis.smembers(SCALE_SETS_KEY))):
            scale_set = raw.decode() if isinstance(raw, bytes) else raw
            entries = self._entries(scale_set)
            if not entries:
                self._forget_if_empty(keys=[_ledger_key(scale_set), SCALE_SETS_KEY], args=[raw])
            found.extend(e for e in entries if e.deadline <= now)
        return found

    def postpone(self, entry: LedgerEntry, seconds: float) -> LedgerEntry | None:
        """Moves the entry's deadline ``seconds`` later (its creation waits that long for its
        credential); None when the entry is no longer planned. Atomic: a concurrent removal
        (a cancellation) is not undone."""
        later = LedgerEntry(
            entry.scale_set, entry.name, entry.batch_id, entry.deadline + seconds, entry.owner_uid
        )
        replaced = self.redis.eval(
            _REPLACE_IF_PRESENT,
            1,
            _ledger_key(entry.scale_set),
            entry.name,
            json.dumps(later.to_dict()),
        )
        return later if replaced else None

    def mark_created(self, scale_set: str, name: str, now: float) -> bool:
        """The runner's objects all exist: no task may create it again, and it counts in
        flight until the reconciler has seen its Pod and removes the entry. False when the
        entry is gone (cancelled meanwhile): it is not written back."""
        return bool(self._mark_created(keys=[_ledger_key(scale_set)], args=[name, now]))

    def complete(self, scale_set: str, name: str) -> None:
        """The runner failed for good (or is not wanted): it is no longer in flight."""
        self.redis.hdel(_ledger_key(scale_set), name)

    def remove(self, entries: list[LedgerEntry]) -> None:
        if not entries:
            return
        pipe = self.redis.pipeline(transaction=True)
        for entry in entries:
            pipe.hdel(_ledger_key(entry.scale_set), entry.name)
        pipe.execute()

    def _entries(self, scale_set: str) -> list[LedgerEntry]:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(_ledger_key(scale_set)))
        return sorted(
            (LedgerEntry.from_dict(json.loads(value)) for value in raw.values()),
            key=lambda e: (e.deadline, e.name),
        )


class BatchProgress:
    """Counters of one batch: total, done and done per outcome. Kept for a day."""

    def __init__(self, redis_client: redis.Redis):
        self.redis = redis_client

    def start(self, batch_id: str, scale_set: str, total: int) -> None:
        key = BATCH_PREFIX + batch_id
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"scale_set": scale_set, "total": total, "done": 0})
        pipe.expire(key, BATCH_TTL_SECONDS)
        pipe.execute()

    def record_outcome(self, batch_id: str, outcome: str) -> tuple[int, int]:
        """Count one finished runner; returns (done, total) after it. A batch not started (or
        forgotten) has total 0."""
        key = BATCH_PREFIX + batch_id
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(key, "done", 1)
        pipe.hincrby(key, f"outcome:{outcome}", 1)
        pipe.hget(key, "total")
        pipe.expire(key, BATCH_TTL_SECONDS)
        done, _, total, _ = pipe.execute()
        return int(done), int(total or 0)

    def get(self, batch_id: str) -> dict[str, Any] | None:
        """{"scale_set", "total", "done", "outcomes": {outcome: count}}, or None when the
        batch is unknown."""
        raw = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in cast(dict, self.redis.hgetall(BATCH_PREFIX + batch_id)).items()
        }
        if not raw:
            return None
        return {
            "scale_set": raw.get("scale_set", ""),
            "total": int(raw.get("total", 0)),
            "done": int(raw.get("done", 0)),
            "outcomes": {
                k.removeprefix("outcome:"): int(v)
                for k, v in raw.items()
                if k.startswith("outcome:")
            },
        }
