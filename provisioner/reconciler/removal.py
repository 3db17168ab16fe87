"""Removing runners: the GitHub registration first (so no job can be given to a runner that is
about to vanish, and a busy runner is refused by GitHub), then its Pod and Secret. A Pod is
deleted only after GitHub confirmed its registration gone (or never there): a runner missing
from a listing is asked about by name, never assumed idle."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from provisioner import metrics
from provisioner.github import Runner
from provisioner.github.errors import RunnerBusy
from provisioner.kube.scaleset import ScaleSet
from provisioner.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class RemovalResult:
    removed: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Left for a later pass: the credential's delete-runner calls for this minute are spent.
    deferred: list[str] = field(default_factory=list)
    # Seconds until the deferred ones may go (None: nothing deferred).
    retry_after: float | None = None


class RunnerRemover:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def remove(
        self,
        scale_set: ScaleSet,
        names: list[str],
        why: str,
        registered: Mapping[str, Runner] | None = None,
    ) -> RemovalResult:
        """Remove ``names``. ``registered`` (name -> registration, from a listing the caller
        already made) saves a lookup per runner listed in it; any other name is looked up."""
        result = RemovalResult()
        if not names:
            return result
        # One removal is a GitHub round trip or two: done side by side, as many at once as
        # creations may talk to GitHub, so scaling 500 runners down does not take minutes.
        workers = max(1, min(len(names), self.runtime.settings.runner_creation_concurrency))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remove") as pool:
            outcomes = pool.map(
                lambda name: self._remove_one(scale_set, name, why, (registered or {}).get(name)),
                names,
            )
            for name, (outcome, wait) in zip(names, outcomes, strict=True):
                getattr(result, outcome).append(name)
                if wait is not None:
                    result.retry_after = min(wait, result.retry_after or wait)
        if result.deferred:
            log.info(
                "%s: %d removals wait %.1fs for GitHub's per-minute limit of delete-runner",
                scale_set.key,
                len(result.deferred),
                result.retry_after or 0.0,
            )
        return result

    def _remove_one(
        self, scale_set: ScaleSet, name: str, why: str, runner: Runner | None
    ) -> tuple[str, float | None]:
        """ "removed", "busy", "failed" or "deferred", and for "deferred" the seconds until
        it may go."""
        try:
            self.runtime.registrations.remove(
                scale_set, name, runner, admit=lambda: self._admit(scale_set)
            )
        except RunnerBusy:
            return "busy", None
        except RemovalDeferred as deferred:
            return "deferred", deferred.retry_after
        except Exception as exc:
            log.warning("runner %s: could not remove its registration: %s", name, exc)
            return "failed", None
        try:
            self.runtime.objects(scale_set).delete_runner_objects(name, owner_uid=scale_set.uid)
        except Exception as exc:
            log.warning("runner %s: could not delete its Pod/Secret: %s", name, exc)
            return "failed", None
        log.info("runner %s removed (%s)", name, why)
        metrics.RUNNERS_REMOVED.labels(scale_set=scale_set.key, why=why).inc()
        return "removed", None

    @contextlib.contextmanager
    def _admit(self, scale_set: ScaleSet) -> Iterator[None]:
        """A place among the credential's delete-runner calls this minute, held around the
        call, or RemovalDeferred with no call made: past GitHub's points a minute every call
        would be refused."""
        credential = self.runtime.github.credential(scale_set)
        call = uuid.uuid4().hex
        wait = self.runtime.limits.try_removal(credential, call)
        if wait > 0:
            raise RemovalDeferred(wait)
        try:
            yield
        finally:
            self.runtime.limits.removal_answered(credential, call)


class RemovalDeferred(Exception):
    """The credential's delete-runner calls for this minute are spent."""

    def __init__(self, retry_after: float):
        super().__init__(f"delete-runner calls of this minute spent; next in {retry_after:.1f}s")
        self.retry_after = retry_after
