"""One holder per runner at a time, across every worker and the reconciler.

A delivery of a runner's task holds the runner's lock for as long as it works on the runner.
The lock is a lease in Redis renewed in the background while its holder lives, so a slow
creation (Redis retries, a slow API server, a long rollback) never loses it to a redelivery
of the same task; a killed holder stops renewing and its lock expires within one lease.
Whoever removes a runner's ledger entry can wait for the lock to learn that nothing is
working on the runner any more."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

log = logging.getLogger(__name__)

LOCK_PREFIX = "provisioner:lock:runner:"
LEASE_SECONDS = 15.0
# Renewed three times per lease: two renewals may fail (a Redis blip) before it could lapse.
RENEW_EVERY_SECONDS = LEASE_SECONDS / 3
_POLL_SECONDS = 0.2

# A lock that is gone (Redis restarted without its data) is taken again by its holder; one
# another holder took is lost.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def lock_key(name: str) -> str:
    return LOCK_PREFIX + name


@dataclass
class RunnerLease:
    """A held lock. ``held`` turns False when a renewal found the lock gone or taken: the
    holder must then stop changing the runner (another delivery owns it now)."""

    name: str
    token: str
    renewed_at: float = field(default_factory=time.monotonic)
    lost: bool = False

    @property
    def held(self) -> bool:
        # A lease whose renewals have failed for a whole lease period may have lapsed.
        return not self.lost and time.monotonic() - self.renewed_at < LEASE_SECONDS


class RunnerLocks:
    """Thread-safe; one per process. Its renewer thread starts with the first lock taken."""

    def __init__(self, redis_client: redis.Redis, lease: float = LEASE_SECONDS) -> None:
        self.redis = redis_client
        self.lease = lease
        self._renew = redis_client.register_script(_RENEW)
        self._release = redis_client.register_script(_RELEASE)
        self._held: dict[str, RunnerLease] = {}
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._stopped = threading.Event()

    @contextlib.contextmanager
    def hold(self, name: str, wait: float) -> Iterator[RunnerLease | None]:
        """The runner's lease for the block, or None when another holder kept it for
        ``wait`` seconds (or Redis stayed away that long)."""
        lease = self._acquire(name, wait)
        if lease is None:
            yield None
            return
        try:
            yield lease
        finally:
            with self._lock:
                self._held.pop(name, None)
            with contextlib.suppress(redis.RedisError):
                self._release(keys=[lock_key(name)], args=[lease.token])

    def is_held(self, name: str) -> bool:
        """Whether anyone holds ``name``'s lock now."""
        return bool(self.redis.exists(lock_key(name)))

    def wait_until_free(self, names: list[str], timeout: float) -> list[str]:
        """Waits up to ``timeout`` seconds for the locks of ``names`` to be free; returns the
        names still held then."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            pipe = self.redis.pipeline(transaction=False)
            for name in pending:
                pipe.exists(lock_key(name))
            pending = [name for name, held in zip(pending, pipe.execute(), strict=True) if held]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(_POLL_SECONDS)
        return pending

    def close(self) -> None:
        self._stopped.set()

    def _acquire(self, name: str, wait: float) -> RunnerLease | None:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        while True:
            with contextlib.suppress(redis.RedisError):
                if self.redis.set(lock_key(name), token, nx=True, px=int(self.lease * 1000)):
                    lease = RunnerLease(name, token)
                    with self._lock:
                        self._held[name] = lease
                        self._start_renewer()
                    return lease
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL_SECONDS)

    def _start_renewer(self) -> None:
        if self._renewer is None:
            self._renewer = threading.Thread(
                target=self._renew_forever, name="runner-lock-renewer", daemon=True
            )
            self._renewer.start()

    def _renew_forever(self) -> None:
        while not self._stopped.wait(RENEW_EVERY_SECONDS * self.lease / LEASE_SECONDS):
            # Held across the renewal: a lock released meanwhile would otherwise be taken
            # again by the renewal (which retakes a lock it finds gone) for a whole lease.
            with self._lock:
                leases = list(self._held.values())
                if not leases:
                    continue
                try:
                    pipe = self.redis.pipeline(transaction=False)
                    for lease in leases:
                        self._renew(
                            keys=[lock_key(lease.name)],
                            args=[lease.token, int(self.lease * 1000)],
                            client=pipe,
                        )
                    renewed = pipe.execute()
                except redis.RedisError as exc:
                    log.warning("runner locks: renewal failed (%s); retrying", exc)
                    continue
            now = time.monotonic()
            for lease, ok in zip(leases, renewed, strict=True):
                if ok:
                    lease.renewed_at = now
                else:
                    lease.lost = True
                    log.warning("runner %s: its lock was lost to another holder", lease.name)
