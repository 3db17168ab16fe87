"""The reconciler process: watches RunnerScaleSets and runner pods, and reconciles each scale
set that changed, one at a time, while it holds the leader Lease.

Watches feed a queue of scale-set keys; a key queued many times is reconciled once. Pod events
are debounced (a batch of 100 pods is a burst of events), and so are scale-set events that
change only the status (the reconciler's own writes during a scale-up); any other change to a
scale set is reconciled at once. A periodic resync re-queues every scale set, so a lost event
only delays convergence."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from provisioner.backoff import retry_delay
from provisioner.config import Settings
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.errors import KubeConflict
from provisioner.kube.leader import LeaderElector, LostLeadership
from provisioner.kube.pod_cache import RunnerPodCache
from provisioner.kube.runner_objects import SCALE_SET_LABEL
from provisioner.kube.scaleset import ScaleSetStore
from provisioner.reconciler.dispatch import ChordDispatcher, Dispatcher, SequentialDispatcher
from provisioner.reconciler.gc import GarbageCollector
from provisioner.reconciler.key_queue import KeyQueue
from provisioner.reconciler.scale_set import ScaleSetReconciler
from provisioner.runtime import Runtime

log = logging.getLogger(__name__)

POD_DEBOUNCE_SECONDS = 1.0
RESYNC_SECONDS = 30.0
GC_INTERVAL_SECONDS = 60.0
WATCH_SECONDS = 300
# A pass whose write met a change made since its read (a user scaling a scale set just
# created, say) starts again from a fresh read at once, and later after each conflict in a
# row (a write that conflicts every time must not spin); a failure waits before its retry.
CONFLICT_RETRY_SECONDS = 0.2
FAILURE_RETRY_SECONDS = 5.0


class Reconciler:
    def __init__(self, settings: Settings, lease_namespace: str = "default"):
        self.settings = settings
        self.runtime = Runtime(settings)
        # A standby, or a leader that lost the Lease, still reports scale sets it saw: it
        # forgets the deleted ones by looking, as no finalizer runs in it.
        self.runtime.scale_sets.forget_deleted_in_background(settings.namespace)
        self.on_heartbeat: Callable[[], None] = lambda: None
        dispatcher: Dispatcher
        if settings.parallel_creation:
            dispatcher = ChordDispatcher(settings, self.runtime.redis)
        else:
            sequential = SequentialDispatcher(self.runtime)
            sequential.on_progress = lambda: self.on_heartbeat()
            dispatcher = sequential
        self.queue = KeyQueue()
        self.store = ScaleSetStore(self.runtime.api)
        self.stopping = threading.Event()
        self.custom = k8s.CustomObjectsApi(self.runtime.api)
        self.core = k8s.CoreV1Api(self.runtime.api)
        self.elector = LeaderElector(
            self.runtime.api,
            lease_namespace,
            "runner-provisioner-reconciler",
            identity=f"{socket.gethostname()}-{os.getpid()}",
            on_started_leading=self._resync,
        )
        self.dispatcher = dispatcher
        self.pods = RunnerPodCache()
        self.scale_sets = ScaleSetReconciler(
            self.runtime,
            dispatcher,
            fence=self.elector.check,
            requeue=lambda key, delay: self.queue.add(key, delay=delay),
            pod_cache=self.pods,
        )
        self._seen_specs: dict[str, tuple[object, ...]] = {}
        self._conflicts: dict[str, int] = {}  # key -> passes in a row that met a conflict
        self.gc = GarbageCollector(self.runtime, fence=self.elector.check)

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._watch_scale_sets, name="watch-scale-sets", daemon=True),
            threading.Thread(target=self._watch_pods, name="watch-pods", daemon=True),
            threading.Thread(target=self._resync_forever, name="resync", daemon=True),
        ]
        self.elector.start()
        for thread in threads:
            thread.start()
        log.info(
            "reconciler started (%s creation); waiting for the leader lease",
            "parallel" if self.settings.parallel_creation else "sequential",
        )
        try:
            self._work()
        finally:
            self.stopping.set()
            self.dispatcher.close()
            self.elector.stop(release=True)
            self.runtime.close()

    def stop(self) -> None:
        self.stopping.set()

    def _work(self) -> None:
        next_gc = time.monotonic() + GC_INTERVAL_SECONDS
        while not self.stopping.is_set():
            self.on_heartbeat()
            if self.elector.is_leader and time.monotonic() >= next_gc:
                self._collect_garbage()
                next_gc = time.monotonic() + GC_INTERVAL_SECONDS
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            if not self.elector.is_leader:
                # A standby keeps its watches warm and reconciles nothing.
                continue
            namespace, name = key.split("/", 1)
            conflicts = self._conflicts.pop(key, 0)
            try:
                requeue_after = self.scale_sets.reconcile(namespace, name)
                if requeue_after is not None:
                    self.queue.add(key, delay=requeue_after)
            except LostLeadership:
                log.warning("lost the leader Lease while reconciling %s; stopped there", key)
                self.queue.add(key, delay=1.0)
            except KubeConflict as exc:
                self._conflicts[key] = conflicts + 1
                delay = retry_delay(conflicts, CONFLICT_RETRY_SECONDS, FAILURE_RETRY_SECONDS)
                log.info(
                    "%s changed while it was reconciled (%s); again from a fresh read in %.1fs",
                    key,
                    exc,
                    delay,
                )
                self.queue.add(key, delay=delay)
            except Exception:
                log.exception("reconciling %s failed; retrying in %ss", key, FAILURE_RETRY_SECONDS)
                self.queue.add(key, delay=FAILURE_RETRY_SECONDS)

    def _collect_garbage(self) -> None:
        try:
            scale_sets = self.store.list(self.settings.namespace)
            report = self.gc.collect(scale_sets)
            if report.total:
                log.info(
                    "gc removed %d registrations, %d secrets, %d stale ledger entries",
                    len(report.registrations),
                    len(report.secrets),
                    len(report.ledger_entries),
                )
        except Exception as exc:
            log.warning("garbage collection failed: %s", exc)

    def _list_scale_sets(self, **kwargs: Any) -> Any:
        if self.settings.namespace:
            return self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.settings.namespace, PLURAL, **kwargs
            )
        return self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)

    def _resync(self) -> None:
        try:
            for item in self._list_scale_sets()["items"]:
                meta = item["metadata"]
                self.queue.add(f"{meta['namespace']}/{meta['name']}")
        except Exception as exc:
            log.warning("resync failed: %s", exc)

    def _resync_forever(self) -> None:
        while not self.stopping.wait(RESYNC_SECONDS):
            self._resync()

    def _watch_scale_sets(self) -> None:
        self._watch_forever(
            self._list_scale_sets,
            lambda obj: (obj["metadata"]["namespace"], obj["metadata"]["name"]),
            delay_of=self._scale_set_delay,
        )

    def _scale_set_delay(self, obj: dict[str, Any], event_type: str) -> float:
        meta = obj["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if event_type == "DELETED":
            self._seen_specs.pop(key, None)
            return 0.0
        spec = spec_fingerprint(obj)
        seen, self._seen_specs[key] = self._seen_specs.get(key), spec
        return POD_DEBOUNCE_SECONDS if seen == spec else 0.0

    def _watch_pods(self) -> None:
        def list_pods(**kwargs: Any) -> Any:
            # Listed and watched as JSON: at 10,000 pods client models cost seconds of CPU.
            kwargs.setdefault("_preload_content", False)
            if self.settings.namespace:
                response = self.core.list_namespaced_pod(
                    self.settings.namespace, label_selector=SCALE_SET_LABEL, **kwargs
                )
            else:
                response = self.core.list_pod_for_all_namespaces(
                    label_selector=SCALE_SET_LABEL, **kwargs
                )
            # The watch reads the stream itself; a listing is parsed here.
            return response if kwargs.get("watch") else json.loads(response.data)

        def key_of(pod: dict[str, Any]) -> tuple[str, str | None]:
            meta = pod["metadata"]
            return meta.get("namespace"), (meta.get("labels") or {}).get(SCALE_SET_LABEL)

        self._watch_forever(
            list_pods,
            key_of,
            delay_of=lambda obj, event_type: POD_DEBOUNCE_SECONDS,
            on_listed=self.pods.replace,
            on_event=self.pods.apply,
        )

    def _watch_forever(
        self,
        list_func: Callable[..., Any],
        key_of: Callable[[Any], tuple[str, str | None]],
        delay_of: Callable[[Any, str], float],
        on_listed: Callable[[list[Any]], None] = lambda items: None,
        on_event: Callable[[str, Any], None] = lambda event_type, obj: None,
    ) -> None:
        """Keys of what ``list_func`` lists (as JSON), queued as it changes. ``on_listed`` gets
        each whole listing, ``on_event`` each change after it (in order)."""
        resource_version = None
        while not self.stopping.is_set():
            stream = watch.Watch()
            try:
                if resource_version is None:
                    listing = list_func()
                    on_listed(listing["items"])
                    for item in listing["items"]:
                        self._enqueue(key_of(item), delay_of(item, "ADDED"))
                    resource_version = listing["metadata"]["resourceVersion"]
                for event in stream.stream(
                    list_func,
                    resource_version=resource_version,
                    timeout_seconds=WATCH_SECONDS,
                    allow_watch_bookmarks=True,
                ):
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        resource_version = None
                        break
                    resource_version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        on_event(event["type"], obj)
                        self._enqueue(key_of(obj), delay_of(obj, event["type"]))
                    if self.stopping.is_set():
                        break
            except ApiException as exc:
                if exc.status == 410:  # our resourceVersion is too old: list again
                    resource_version = None
                    continue
                log.warning("watch failed (%s); retrying", exc.reason)
                resource_version = None
                self.stopping.wait(1.0)
            except Exception as exc:
                log.warning("watch interrupted (%s); retrying", exc)
                resource_version = None
                self.stopping.wait(1.0)
            finally:
                stream.stop()

    def _enqueue(self, key: tuple[str, str | None], delay: float) -> None:
        namespace, name = key
        if name:
            self.queue.add(f"{namespace}/{name}", delay)


def spec_fingerprint(scale_set: dict[str, Any]) -> tuple[object, ...]:
    """All of a RunnerScaleSet that asks for a reconciliation: everything but its status and
    its resourceVersion, which change with every status write."""
    meta = scale_set.get("metadata") or {}
    return (
        meta.get("uid"),
        meta.get("generation"),
        meta.get("deletionTimestamp"),
        tuple(meta.get("finalizers") or ()),
        tuple(sorted((meta.get("labels") or {}).items())),
        tuple(sorted((meta.get("annotations") or {}).items())),
    )
