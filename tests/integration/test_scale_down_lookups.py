"""Scale-down in a scope shared with many other runners (an organisation of many scale sets):
removing a few runners asks GitHub about them by name instead of listing the whole scope, and
a large removal reads the listing's pages side by side. Busy runners stay either way."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client as k8s

from provisioner.config import load_settings
from provisioner.ghsim.server import GitHubSimulator
from provisioner.kube.scaleset import ScaleSet
from provisioner.naming import owner_label
from provisioner.runtime import Runtime
from tests.fixtures.pipeline import TestPipeline as Pipeline
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

SCOPE = "repos/octo-org/octo-repo"  # the simulator's key of the test scale sets' scope
OTHER_RUNNERS = 3_000  # 30 pages of a listing
PAGE = 100


def _fill_scope(server: GitHubSimulator, count: int, first: int = 0) -> None:
    """Registrations of another scale set in the same scope, made straight in the simulator."""
    labels = ["self-hosted", owner_label("another-scale-set")]
    for index in range(first, first + count):
        server.simulator.registry.register(SCOPE, f"other-{index}", 1, labels)


class RunnerCalls:
    """Counts the GitHub calls the simulator answers, by kind: a page of a full listing of
    the runners, a lookup by name, anything else; and the most listing pages in flight at
    once."""

    def __init__(self, server: GitHubSimulator) -> None:
        self._handle = server.simulator.handle
        self._lock = threading.Lock()
        self.pages = 0
        self.lookups = 0
        self.others = 0
        self._pages_in_flight = 0
        self.most_pages_at_once = 0

    def reset(self) -> None:
        with self._lock:
            self.pages = self.lookups = self.others = self.most_pages_at_once = 0

    @property
    def total(self) -> int:
        return self.pages + self.lookups + self.others

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes):
        url = urlsplit(target)
        if url.path.startswith("/_sim/"):
            return self._handle(method, target, headers, body)
        listing = method == "GET" and url.path.endswith("/actions/runners")
        page = listing and "name" not in parse_qs(url.query)
        with self._lock:
            if page:
                self.pages += 1
                self._pages_in_flight += 1
                self.most_pages_at_once = max(self.most_pages_at_once, self._pages_in_flight)
            elif listing:
                self.lookups += 1
            else:
                self.others += 1
        try:
            return self._handle(method, target, headers, body)
        finally:
            if page:
                with self._lock:
                    self._pages_in_flight -= 1


def _live_pods(pipeline: Pipeline) -> list[k8s.V1Pod]:
    """The scale set's pods not being deleted, oldest first as the reconciler orders them."""
    pods = k8s.CoreV1Api(pipeline.kube_api).list_namespaced_pod(
        pipeline.namespace, label_selector="provisioner.dev/scale-set=runners"
    )
    live = [p for p in pods.items if not p.metadata.deletion_timestamp]
    return sorted(live, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))


def _our_registrations(pipeline: Pipeline) -> set[str]:
    return {
        r["name"] for r in pipeline.ghsim.admin.registrations() if r["name"].startswith("runners-")
    }


def _start_among_others(pipeline: Pipeline, ghsim_server: GitHubSimulator, replicas: int) -> None:
    """Our scale set's ``replicas`` runners, registered in a scope holding many others'."""
    _fill_scope(ghsim_server, OTHER_RUNNERS)
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=replicas)
    pipeline.wait_for_runners(replicas)


def test_a_few_removals_from_a_large_scope_ask_by_name_and_spare_busy_runners(
    pipeline: Pipeline, ghsim_server: GitHubSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _start_among_others(pipeline, ghsim_server, replicas=12)
    # A fresh reconciler: its garbage collection, which lists runners too, first runs a
    # minute after it starts, so every listing seen below is a scale-down's.
    pipeline.reconcilers[0].stop(timeout=15)
    pipeline.start_reconciler()
    calls = RunnerCalls(ghsim_server)
    monkeypatch.setattr(ghsim_server.simulator, "handle", calls.handle)

    # Nothing is known of the scope yet: it is listed, and its size remembered.
    pipeline.scale("runners", 10)
    pipeline.wait_for_runners(10)
    assert calls.pages >= OTHER_RUNNERS // PAGE

    live = [p.metadata.name for p in _live_pods(pipeline)]
    busy = live[-2:]  # the newest, asked about first
    for name in busy:
        pipeline.ghsim.admin.set_runner_state(name, "busy")
    calls.reset()

    pipeline.scale("runners", 5)
    # The 2 busy runners and the 3 oldest idle ones stay.
    kept = set(busy) | set(live[:3])
    wait_until(
        lambda: {p.metadata.name for p in _live_pods(pipeline)} == kept,
        60,
        "the 5 newest idle runners to go",
    )
    wait_until(lambda: _our_registrations(pipeline) == kept, 30, "their registrations to go")
    # 7 lookups (5, then 2 more past the busy ones) and 5 removals; a listing is 31 pages.
    assert calls.pages == 0, f"{calls.pages} pages of the scope's runners listed"
    assert calls.total <= 20, (calls.lookups, calls.others)
    status = pipeline.scale_set().get("status") or {}
    assert status.get("drainingRunners", 0) == 0, status


def test_a_large_scale_down_reads_the_listing_pages_side_by_side(
    pipeline: Pipeline, ghsim_server: GitHubSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _start_among_others(pipeline, ghsim_server, replicas=40)
    busy = [p.metadata.name for p in _live_pods(pipeline)][-3:]
    for name in busy:
        pipeline.ghsim.admin.set_runner_state(name, "busy")
    # With some latency, pages fetched side by side surely overlap.
    pipeline.ghsim.admin.configure(latency_ms=100)
    calls = RunnerCalls(ghsim_server)
    monkeypatch.setattr(ghsim_server.simulator, "handle", calls.handle)

    # 40 removals cost more calls than the 31 pages of the listing.
    pipeline.scale("runners", 0)

    wait_until(lambda: _our_registrations(pipeline) == set(busy), 60, "the idle runners to go")
    assert {p.metadata.name for p in _live_pods(pipeline)} == set(busy)
    assert calls.pages >= OTHER_RUNNERS // PAGE
    assert calls.most_pages_at_once >= 5, f"at most {calls.most_pages_at_once} pages at once"
    others = [r for r in pipeline.ghsim.admin.registrations() if r["name"].startswith("other-")]
    assert len(others) == OTHER_RUNNERS


def test_a_listing_reads_the_registrations_made_while_its_pages_were_read(
    pipeline: Pipeline, ghsim_server: GitHubSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Page 1 says 250 (3 pages); 150 more are registered right after it is read: the pages
    fetched side by side end full, and the listing walks on to the fourth."""
    _fill_scope(ghsim_server, 250)
    scale_set = ScaleSet.from_object(pipeline.apply_scale_set(replicas=0))
    handle = ghsim_server.simulator.handle
    grown = threading.Event()

    def grow_after_page_1(method: str, target: str, headers: dict[str, str], body: bytes):
        outcome = handle(method, target, headers, body)
        url = urlsplit(target)
        page_1 = url.path.endswith("/actions/runners") and parse_qs(url.query).get("page") == ["1"]
        if page_1 and not grown.is_set():
            _fill_scope(ghsim_server, 150, first=250)
            grown.set()
        return outcome

    monkeypatch.setattr(ghsim_server.simulator, "handle", grow_after_page_1)
    settings = {
        "kubeconfig": pipeline.kubeconfig,
        "redis_url": pipeline.redis_url,
        "github_api_url": pipeline.ghsim.url,
    }
    runtime = Runtime(load_settings(settings))
    try:
        listed = [runner.name for runner in runtime.registrations.list(scale_set)]
        assert runtime.registrations.last_total(scale_set) == 250
    finally:
        runtime.close()
    assert grown.is_set()
    assert sorted(listed) == sorted(f"other-{index}" for index in range(400))
