"""The runner pods as the reconciler's watch last saw them, by scale set: a reconcile pass
counts its scale set's pods from here instead of listing them from the API server (at 10,000
runners a listing is 10,000 pods, and a scale-up makes a pass a second).

The cache may lag the API server by the watch's delay. The reconciler copes both ways: a pod
created but not yet seen here is still counted in flight by its ledger entry (kept until the
pod is seen, see provisioner.ledger), and a pod the reconciler deleted is dropped here at once
(and any older event of it ignored), so a pass right after a removal does not count it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from provisioner.kube.runner_objects import SCALE_SET_LABEL, RunnerPod

# How long an event of a pod the reconciler deleted is taken for one from before the deletion.
# The watch delivers within a second or two; past this the pod would be back as it is.
DELETED_MEMORY_SECONDS = 60.0

_Key = tuple[str, str]  # (namespace, scale set name)


class RunnerPodCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pods: dict[_Key, dict[str, RunnerPod]] = {}
        # (namespace, pod) -> (its uid, "" if unknown; when the reconciler deleted it)
        self._deleted: dict[tuple[str, str], tuple[str, float]] = {}
        self._synced = False

    def replace(self, pods: Iterable[dict[str, Any]]) -> None:
        """All the runner pods there are, from a listing: the watch (re)started."""
        fresh: dict[_Key, dict[str, RunnerPod]] = {}
        with self._lock:
            for pod in pods:
                key = _key_of(pod)
                if key is not None and not self._deleted_by_us(pod):
                    fresh.setdefault(key, {})[_name(pod)] = RunnerPod.from_dict(pod)
            self._pods = fresh
            self._synced = True

    def apply(self, event_type: str, pod: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED or DELETED) of a runner pod."""
        key = _key_of(pod)
        if key is None:
            return
        name = _name(pod)
        with self._lock:
            if event_type == "DELETED":
                self._deleted.pop((key[0], name), None)
                self._pods.get(key, {}).pop(name, None)
            elif not self._deleted_by_us(pod):
                self._pods.setdefault(key, {})[name] = RunnerPod.from_dict(pod)

    def deleted(self, namespace: str, scale_set: str, names: Iterable[str]) -> None:
        """The reconciler deleted these pods: they are gone now, whatever the watch says."""
        now = self._clock()
        with self._lock:
            pods = self._pods.get((namespace, scale_set), {})
            for name in names:
                gone = pods.pop(name, None)
                self._deleted[(namespace, name)] = (gone.uid if gone else "", now)
            self._deleted = {
                pod: (uid, when)
                for pod, (uid, when) in self._deleted.items()
                if now - when < DELETED_MEMORY_SECONDS
            }

    def pods(self, namespace: str, scale_set: str) -> list[RunnerPod] | None:
        """The scale set's runner pods, or None until the watch has listed them once."""
        with self._lock:
            if not self._synced:
                return None
            return list(self._pods.get((namespace, scale_set), {}).values())

    def _deleted_by_us(self, pod: dict[str, Any]) -> bool:
        """Whether ``pod`` is one the reconciler deleted lately (a new pod of the same name
        is not)."""
        meta = pod.get("metadata") or {}
        deleted = self._deleted.get((str(meta.get("namespace") or ""), _name(pod)))
        if deleted is None:
            return False
        uid, when = deleted
        same_pod = not uid or uid == meta.get("uid")
        return same_pod and self._clock() - when < DELETED_MEMORY_SECONDS


def _key_of(pod: dict[str, Any]) -> _Key | None:
    meta = pod.get("metadata") or {}
    scale_set = (meta.get("labels") or {}).get(SCALE_SET_LABEL)
    if not scale_set:
        return None
    return str(meta.get("namespace") or ""), str(scale_set)


def _name(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")
