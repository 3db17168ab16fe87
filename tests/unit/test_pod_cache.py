"""The reconciler's runner pods from its watch: listings replace, events change, and pods the
reconciler deleted stay gone while the watch catches up."""

from provisioner.kube.pod_cache import DELETED_MEMORY_SECONDS, RunnerPodCache
from provisioner.kube.runner_objects import SCALE_SET_LABEL


def pod(name: str, scale_set: str = "linux", namespace: str = "team", uid: str = "") -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{name}",
            "labels": {SCALE_SET_LABEL: scale_set},
        },
        "status": {"phase": "Running"},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def names(cache: RunnerPodCache, scale_set: str = "linux", namespace: str = "team") -> list:
    pods = cache.pods(namespace, scale_set)
    return sorted(p.name for p in pods) if pods is not None else None


def test_nothing_is_known_until_the_first_listing():
    cache = RunnerPodCache()
    cache.apply("ADDED", pod("linux-aaaaa"))
    assert cache.pods("team", "linux") is None
    cache.replace([pod("linux-bbbbb")])
    assert names(cache) == ["linux-bbbbb"]
    assert names(cache, "other") == []


def test_pods_are_kept_per_namespace_and_scale_set():
    cache = RunnerPodCache()
    cache.replace([pod("a"), pod("b", scale_set="mac"), pod("c", namespace="other")])
    assert names(cache) == ["a"]
    assert names(cache, "mac") == ["b"]
    assert names(cache, namespace="other") == ["c"]


def test_events_add_change_and_remove_pods():
    cache = RunnerPodCache()
    cache.replace([])
    cache.apply("ADDED", pod("a"))
    finished = pod("a")
    finished["status"] = {"phase": "Succeeded"}
    cache.apply("MODIFIED", finished)
    (seen,) = cache.pods("team", "linux") or []
    assert seen.state == "finished"
    cache.apply("DELETED", finished)
    assert names(cache) == []


def test_a_listing_replaces_everything_known():
    cache = RunnerPodCache()
    cache.replace([pod("a"), pod("b")])
    cache.replace([pod("b")])
    assert names(cache) == ["b"]


def test_a_pod_the_reconciler_deleted_stays_gone_while_late_events_arrive():
    clock = Clock()
    cache = RunnerPodCache(clock)
    cache.replace([pod("a"), pod("b")])
    cache.deleted("team", "linux", ["a"])
    assert names(cache) == ["b"]
    # Events from before the deletion, and a listing taken before it, do not bring it back.
    cache.apply("MODIFIED", pod("a"))
    cache.replace([pod("a"), pod("b")])
    assert names(cache) == ["b"]
    # A new pod of the same name is another pod.
    cache.apply("ADDED", pod("a", uid="new"))
    assert names(cache) == ["a", "b"]


def test_a_deletion_is_remembered_for_a_while_only():
    clock = Clock()
    cache = RunnerPodCache(clock)
    cache.replace([pod("a")])
    cache.deleted("team", "linux", ["a"])
    clock.now = DELETED_MEMORY_SECONDS + 1
    cache.apply("MODIFIED", pod("a"))
    assert names(cache) == ["a"]


def test_pods_without_the_scale_set_label_are_not_runners():
    cache = RunnerPodCache()
    stray = pod("x")
    stray["metadata"]["labels"] = {}
    cache.replace([stray])
    cache.apply("ADDED", stray)
    assert names(cache) == []
