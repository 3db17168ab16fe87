"""Deleting a RunnerScaleSet: its finalizer holds the resource until every runner it owns is
gone, wherever the runner was in its creation.

The order matters. Planned runners are cancelled first (their ledger entries removed), so no
creation starts for them; creations already under way notice and roll back, and the
finalizer waits for their runner locks, so nothing is made after it looked. Only then are the
scale set's registrations (by owner label), Secrets and Pods listed and removed."""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client as k8s

from provisioner import metrics
from provisioner.failure_budget import CREATION_FAILURES, START_FAILURES, FailureBudget
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.errors import kube_errors
from provisioner.kube.scaleset import ScaleSet, ScaleSetSpecError
from provisioner.naming import is_owned_by
from provisioner.reconciler.gc import forget_sightings
from provisioner.reconciler.removal import RunnerRemover
from provisioner.runtime import Runtime

log = logging.getLogger(__name__)

FINALIZER = "provisioner.dev/runners"
FINALIZE_RETRY_SECONDS = 5.0
# How long one pass waits for creations under way to let go of their runners.
LOCK_WAIT_SECONDS = 5.0


class Finalizer:
    def __init__(self, runtime: Runtime, remover: RunnerRemover):
        self.runtime = runtime
        self.remover = remover
        self.custom = k8s.CustomObjectsApi(runtime.api)

    def ensure(self, obj: dict[str, Any]) -> None:
        """Adds the finalizer to a scale set that lacks it."""
        finalizers = obj["metadata"].get("finalizers") or []
        if FINALIZER not in finalizers:
            self._set_finalizers(obj, [*finalizers, FINALIZER])

    def finalize(self, obj: dict[str, Any]) -> float | None:
        """Remove every runner of a deleted scale set, then let it go. Returns the seconds
        after which to look again while runners remain (busy ones finishing their jobs)."""
        meta = obj["metadata"]
        if FINALIZER not in (meta.get("finalizers") or []):
            return None
        key = f"{meta['namespace']}/{meta['name']}"
        runtime = self.runtime
        planned = runtime.ledger.entries(key)
        runtime.ledger.remove(planned)
        under_way = runtime.locks.wait_until_free([e.name for e in planned], LOCK_WAIT_SECONDS)
        if under_way:
            log.info("%s: deletion waits for %d creations to roll back", key, len(under_way))
            return FINALIZE_RETRY_SECONDS
        try:
            scale_set: ScaleSet | None = ScaleSet.from_object(obj)
        except ScaleSetSpecError:
            scale_set = None  # an invalid spec never created runners
        if scale_set is not None:
            remaining = self._remove_runners(scale_set)
            if remaining:
                log.info("%s: deletion waits for %d runners", key, remaining)
                return FINALIZE_RETRY_SECONDS
        self._forget(key)
        self._set_finalizers(obj, [f for f in meta["finalizers"] if f != FINALIZER])
        log.info("%s: all runners removed; deletion can proceed", key)
        return None

    def _remove_runners(self, scale_set: ScaleSet) -> int:
        """Removes what the scale set owns; the number of runners still there."""
        objects = self.runtime.objects(scale_set)
        registered = {
            r.name: r
            for r in self.runtime.registrations.list(scale_set)
            if is_owned_by(r.labels, scale_set.uid)
        }
        pods = objects.runner_pod_names(scale_set.name)
        secrets = set(objects.runner_secret_owners(scale_set.name))
        names = sorted(set(registered) | pods | secrets)
        result = self.remover.remove(scale_set, names, "deleted_scale_set", registered)
        return len(result.busy) + len(result.failed) + len(result.deferred)

    def _forget(self, key: str) -> None:
        runtime = self.runtime
        runtime.ledger.forget_scale_set(key)
        for policy in (START_FAILURES, CREATION_FAILURES):
            FailureBudget(runtime.redis, policy).forget(key)
        runtime.scale_sets.forget(key)
        forget_sightings(runtime.redis, key)
        metrics.forget_scale_set(key)

    def _set_finalizers(self, obj: dict[str, Any], finalizers: list[str]) -> None:
        meta = obj["metadata"]
        # With the resourceVersion read: a concurrent change fails (409) and is retried.
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        with kube_errors(f"update finalizers of {meta['namespace']}/{meta['name']}"):
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], patch
            )
