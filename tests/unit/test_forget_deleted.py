"""A long-running process forgets the metric series and cached reads of RunnerScaleSets that
no longer exist, and only those."""

from __future__ import annotations

import uuid
from typing import Any

from provisioner import metrics
from provisioner.runtime.scale_sets import ScaleSetCache


class FakeCustomObjects:
    def __init__(self, existing: list[str]) -> None:
        self.existing = existing
        self.listed: list[str | None] = []

    def _items(self, namespace: str | None) -> dict[str, Any]:
        self.listed.append(namespace)
        keys = [k for k in self.existing if namespace is None or k.startswith(f"{namespace}/")]
        return {
            "items": [
                {"metadata": {"namespace": k.split("/")[0], "name": k.split("/")[1]}} for k in keys
            ]
        }

    def list_namespaced_custom_object(self, group, version, namespace, plural):
        return self._items(namespace)

    def list_cluster_custom_object(self, group, version, plural):
        return self._items(None)


class FakeStore:
    def __init__(self, existing: list[str]) -> None:
        self.custom = FakeCustomObjects(existing)


def _namespace() -> str:
    # The metrics are the process's own: each test uses names nobody else reports.
    return f"ns-{uuid.uuid4().hex[:8]}"


def _report(key: str) -> None:
    metrics.RUNNER_CREATIONS.labels(scale_set=key, outcome="created", reason="").inc()
    metrics.RUNNER_CREATION_SECONDS.labels(scale_set=key, outcome="created").observe(1.0)
    metrics.RUNNERS_IN_FLIGHT.labels(scale_set=key).set(0)
    metrics.BATCHES.labels(scale_set=key, result="complete").inc()


def test_series_of_deleted_scale_sets_go_and_the_others_stay():
    ns = _namespace()
    deleted, kept = f"{ns}/deleted", f"{ns}/kept"
    _report(deleted)
    _report(kept)
    cache = ScaleSetCache(FakeStore([kept]))  # type: ignore[arg-type]

    assert cache.forget_deleted(ns) == [deleted]
    reported = metrics.scale_sets_reported()
    assert deleted not in reported and kept in reported
    assert cache.forget_deleted(ns) == []


def test_a_scale_set_being_deleted_is_kept_until_it_is_gone():
    ns = _namespace()
    key = f"{ns}/runners"
    _report(key)
    store = FakeStore([key])  # still listed: its finalizer has not let it go yet
    cache = ScaleSetCache(store)  # type: ignore[arg-type]
    assert cache.forget_deleted(ns) == []
    store.custom.existing = []
    assert cache.forget_deleted(ns) == [key]
    assert key not in metrics.scale_sets_reported()


def test_a_process_serving_one_namespace_leaves_other_namespaces_alone():
    ns, other = _namespace(), _namespace()
    _report(f"{other}/runners")
    store = FakeStore([])
    cache = ScaleSetCache(store)  # type: ignore[arg-type]
    assert cache.forget_deleted(ns) == []
    assert f"{other}/runners" in metrics.scale_sets_reported()
    assert store.custom.listed == []  # nothing of its own known: no listing at all


def test_a_process_serving_every_namespace_lists_them_all():
    ns = _namespace()
    _report(f"{ns}/gone")
    store = FakeStore([])
    cache = ScaleSetCache(store)  # type: ignore[arg-type]
    assert f"{ns}/gone" in cache.forget_deleted(None)
    assert store.custom.listed == [None]
