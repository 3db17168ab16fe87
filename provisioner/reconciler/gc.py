"""Garbage collection of what a crash may leave behind: the scale set's own GitHub
registrations (its owner label and name pattern) with neither a pod nor a live ledger entry,
its Secrets with no pod, ledger entries past their deadline. Leftovers get a grace period from
when they were first seen orphaned, so a runner being created right now (registered, Secret
not yet written) is never taken. Another scale set's runners are never candidates, even when
their names share the prefix (same-named scale sets in two namespaces or clusters)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import redis

from provisioner import metrics
from provisioner.github import Runner
from provisioner.github.errors import RunnerBusy
from provisioner.kube.leader import LostLeadership
from provisioner.kube.scaleset import ScaleSet
from provisioner.naming import is_owned_by, runner_name_pattern
from provisioner.runtime import Runtime
from provisioner.runtime.registrations import ScopeView

log = logging.getLogger(__name__)

GRACE_SECONDS = 120.0
_FIRST_SEEN_KEY = "provisioner:gc:first-seen"


def own_registrations(listing: Iterable[Runner], prefix: str, uid: str) -> dict[str, Runner]:
    """The registrations of a scope's listing that are the scale set's, by name: its owner
    label and a name it would give. The listing may be shared with other scale sets."""
    pattern = runner_name_pattern(prefix)
    return {r.name: r for r in listing if pattern.match(r.name) and is_owned_by(r.labels, uid)}


def orphans(
    candidates: Iterable[str],
    keep: set[str],
    first_seen: dict[str, float],
    now: float,
    grace: float,
) -> tuple[list[str], dict[str, float]]:
    """Which candidates to remove now, and the first-seen times to remember.

    A candidate in ``keep`` (has a pod or a live ledger entry) is not an orphan and is
    forgotten; an orphan is removed once it has been one for ``grace`` seconds."""
    remove: list[str] = []
    seen: dict[str, float] = {}
    for name in sorted(set(candidates) - keep):
        since = first_seen.get(name, now)
        if now - since >= grace:
            remove.append(name)
        else:
            seen[name] = since
    return remove, seen


@dataclass
class GcReport:
    registrations: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    ledger_entries: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # scale sets not collected this pass

    @property
    def total(self) -> int:
        return len(self.registrations) + len(self.secrets) + len(self.ledger_entries)


class GarbageCollector:
    def __init__(
        self,
        runtime: Runtime,
        grace: float = GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
        fence: Callable[[], None] = lambda: None,
    ):
        """``fence`` is called before every removal and raises when this process may no
        longer write (the reconciler's leader check)."""
        self.runtime = runtime
        self.grace = grace
        self.clock = clock
        self.fence = fence

    def collect(self, scale_sets: list[ScaleSet], dry_run: bool = False) -> GcReport:
        report = GcReport()
        now = self.clock()
        ledger = self.runtime.ledger
        expired = ledger.expired(now)
        report.ledger_entries = [f"{entry.scale_set}/{entry.name}" for entry in expired]
        if not dry_run and expired:
            self.fence()
            ledger.remove(expired)
            metrics.GARBAGE_COLLECTED.labels(kind="ledger").inc(len(expired))
        first_seen = self._first_seen()
        remembered: dict[str, float] = {}
        # Many scale sets share a scope (one organisation) and a credential: each listing of
        # the scope (paged, 100 registrations a call) serves all of them in this pass.
        listings: dict[ScopeView, list[Runner] | Exception] = {}
        for scale_set in scale_sets:
            try:
                listing = self._listing(scale_set, listings)
                seen = self._collect_scale_set(scale_set, listing, first_seen, now, dry_run, report)
            except LostLeadership:
                raise
            except Exception as exc:
                # One scale set's trouble (its credential revoked or held back, its Secret
                # unreadable) stops only its own collection; the time its leftovers were
                # first seen is kept, so their grace runs on.
                log.warning("gc: %s skipped this pass: %s", scale_set.key, exc)
                report.skipped.append(scale_set.key)
                prefix = f"{scale_set.key}/"
                seen = {k: v for k, v in first_seen.items() if k.startswith(prefix)}
            remembered.update(seen)
        if not dry_run:
            self._remember(first_seen, remembered, {s.namespace for s in scale_sets})
        for kind, names in (("registration", report.registrations), ("secret", report.secrets)):
            for name in names:
                log.info("gc%s: %s %s", " (dry run)" if dry_run else "", kind, name)
        return report

    def _listing(
        self, scale_set: ScaleSet, listings: dict[ScopeView, list[Runner] | Exception]
    ) -> list[Runner]:
        """Every registration the scale set sees, listed once a pass per view (a listing
        that failed is not asked for again in the pass)."""
        registrations = self.runtime.registrations
        view = registrations.view(scale_set)
        if view not in listings:
            try:
                listings[view] = registrations.list(scale_set)
            except Exception as exc:
                listings[view] = exc
        listing = listings[view]
        if isinstance(listing, Exception):
            raise listing
        return listing

    def _collect_scale_set(
        self,
        scale_set: ScaleSet,
        listing: list[Runner],
        first_seen: dict[str, float],
        now: float,
        dry_run: bool,
        report: GcReport,
    ) -> dict[str, float]:
        runtime = self.runtime
        objects = runtime.objects(scale_set)
        # What may be garbage is listed before what keeps it (ledger, then pods): a runner's
        # ledger entry is written before any of it is made and dropped once its pod exists,
        # so a runner being made meanwhile is kept, even with no grace period.
        registered = own_registrations(listing, scale_set.runner_name_prefix, scale_set.uid)
        secrets = [
            name
            for name, owner in objects.runner_secret_owners(scale_set.name).items()
            if owner == scale_set.uid
        ]
        in_flight = {e.name for e in runtime.ledger.in_flight(scale_set.key, now)}
        keep = objects.runner_pod_names(scale_set.name) | in_flight

        secret_key = f"{scale_set.key}/secret/"
        remove_secrets, seen_secrets = orphans(
            secrets, keep, _scoped(first_seen, secret_key), now, self.grace
        )
        registration_key = f"{scale_set.key}/registration/"
        remove_registrations, seen_registrations = orphans(
            registered, keep, _scoped(first_seen, registration_key), now, self.grace
        )

        for name in remove_registrations:
            if dry_run:
                report.registrations.append(name)
                continue
            self.fence()
            try:
                runtime.registrations.remove(scale_set, name, registered[name])
            except RunnerBusy:
                continue  # running a job after all: not garbage
            report.registrations.append(name)
            metrics.GARBAGE_COLLECTED.labels(kind="registration").inc()
        for name in remove_secrets:
            if not dry_run:
                self.fence()
                objects.delete_runner_objects(name, owner_uid=scale_set.uid)
                metrics.GARBAGE_COLLECTED.labels(kind="secret").inc()
            report.secrets.append(name)
        return {
            **{secret_key + n: t for n, t in seen_secrets.items()},
            **{registration_key + n: t for n, t in seen_registrations.items()},
        }

    def _first_seen(self) -> dict[str, float]:
        raw = cast(dict, self.runtime.redis.hgetall(_FIRST_SEEN_KEY))
        return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}

    def _remember(
        self, first_seen: dict[str, float], seen: dict[str, float], namespaces: set[str]
    ) -> None:
        """Keep ``seen``; forget the sightings of this pass's namespaces that are no longer
        orphans. Another namespace's are left as they are: its reconciler (one per namespace,
        sharing Redis) measures their grace period from them."""
        stale = [
            key for key in first_seen if key not in seen and key.split("/", 1)[0] in namespaces
        ]
        pipe = self.runtime.redis.pipeline()
        if stale:
            pipe.hdel(_FIRST_SEEN_KEY, *stale)
        if seen:
            pipe.hset(_FIRST_SEEN_KEY, mapping=seen)
        pipe.execute()


def forget_sightings(redis_client: redis.Redis, scale_set_key: str) -> None:
    """Drops the first-seen times of a deleted scale set's leftovers (its finalizer removed
    them all)."""
    prefix = f"{scale_set_key}/"
    keys = [
        k for k in cast(list, redis_client.hkeys(_FIRST_SEEN_KEY)) if _text(k).startswith(prefix)
    ]
    if keys:
        redis_client.hdel(_FIRST_SEEN_KEY, *keys)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _scoped(first_seen: dict[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): v for k, v in first_seen.items() if k.startswith(prefix)}
