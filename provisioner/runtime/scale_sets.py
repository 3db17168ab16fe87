"""RunnerScaleSets as creations read them: one read serves every runner of a batch (the
threads of a batch arriving together wait for one read), a changed generation is read anew,
and the cache is bounded so a long-running worker does not keep every scale set it ever saw.
What a process keeps about a scale set that was deleted (its cache entry, its metric series)
is forgotten by a periodic look at which scale sets still exist."""

from __future__ import annotations

import logging
import threading
import time

from provisioner import metrics
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.errors import KubeNotFound, kube_errors
from provisioner.kube.scaleset import ScaleSet, ScaleSetStore
from provisioner.runtime.cache import BoundedCache

# Without a generation to compare, a scale set read is trusted this long.
SCALE_SET_CACHE_SECONDS = 30.0
CACHE_SIZE = 512
# How often a process looks for deleted scale sets. It cannot wait to be told by a task: a
# deleted scale set's queued tasks find their runners cancelled, and one deleted while idle
# gets no task at all.
FORGET_DELETED_SECONDS = 10.0

log = logging.getLogger(__name__)


class ScaleSetGone(LookupError):
    """The RunnerScaleSet does not exist, is being deleted, or was replaced by a new resource
    of the same name (another uid)."""


class ScaleSetCache:
    def __init__(self, store: ScaleSetStore) -> None:
        self.store = store
        self._cache: BoundedCache[str, tuple[ScaleSet, float]] = BoundedCache(
            CACHE_SIZE, SCALE_SET_CACHE_SECONDS * 10
        )

    def get(self, key: str, generation: int | None, uid: str | None = None) -> ScaleSet:
        """The scale set ``namespace/name`` at ``generation`` or later. ScaleSetGone when it is
        gone, being deleted or not the resource with ``uid``; ScaleSetSpecError when invalid."""

        def fresh(cached: tuple[ScaleSet, float]) -> bool:
            scale_set, read_at = cached
            if generation is not None:
                return scale_set.generation >= generation
            return time.monotonic() - read_at < SCALE_SET_CACHE_SECONDS

        scale_set, _ = self._cache.get_or_load(key, lambda: self._read(key), fresh)
        if scale_set.deleting or (uid and scale_set.uid != uid):
            raise ScaleSetGone(key)
        return scale_set

    def forget(self, key: str) -> None:
        self._cache.discard(key)

    def forget_deleted(self, namespace: str | None) -> list[str]:
        """Forgets what this process keeps about RunnerScaleSets that no longer exist (cache
        entries and metric series), with one listing of ``namespace`` (None: all); returns
        the keys forgotten. One being deleted still exists: its finalizer reports on it."""
        # Known before the listing, so a scale set created since is not taken for deleted.
        known = set(self._cache.keys()) | metrics.scale_sets_reported()
        if namespace:
            known = {key for key in known if key.split("/", 1)[0] == namespace}
        if not known:
            return []
        gone = sorted(known - self._existing(namespace))
        for key in gone:
            self.forget(key)
            metrics.forget_scale_set(key)
        return gone

    def forget_deleted_in_background(
        self, namespace: str | None, interval: float = FORGET_DELETED_SECONDS
    ) -> threading.Event:
        """Runs forget_deleted every ``interval`` seconds in a daemon thread until the
        returned event is set."""
        stopping = threading.Event()

        def run() -> None:
            while not stopping.wait(interval):
                try:
                    gone = self.forget_deleted(namespace)
                except Exception as exc:  # the API server away: look again next time
                    log.warning("looking for deleted RunnerScaleSets failed: %s", exc)
                    continue
                if gone:
                    log.info("forgot deleted RunnerScaleSets: %s", ", ".join(gone))

        threading.Thread(target=run, name="forget-deleted-scale-sets", daemon=True).start()
        return stopping

    def _existing(self, namespace: str | None) -> set[str]:
        custom = self.store.custom
        with kube_errors("list RunnerScaleSets"):
            if namespace:
                listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            else:
                listing = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        return {
            f"{item['metadata']['namespace']}/{item['metadata']['name']}"
            for item in listing.get("items", [])
        }

    def _read(self, key: str) -> tuple[ScaleSet, float]:
        namespace, name = key.split("/", 1)
        read_at = time.monotonic()
        try:
            with kube_errors(f"read RunnerScaleSet {key}"):
                return self.store.get(namespace, name), read_at
        except KubeNotFound:
            raise ScaleSetGone(key) from None
