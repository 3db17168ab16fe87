"""Scale-down with more runners than one page of GitHub's listing (100), while ephemeral
runners deregister between the pages: the later pages shift, and the runners that slid onto
an already-read page are missing from the listing. A busy one among them must not have its
Pod deleted."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client as k8s

from provisioner.ghsim.server import GitHubSimulator
from tests.fixtures.kubelet import Kubelet
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

RUNNERS = 130
PAGE = 100
SHIFT = 10


class DeregisterBetweenPages:
    """Once armed, right after the simulator has computed page 1 of a full runner listing
    (before the answer leaves), ``SHIFT`` runners of that page finish their job and
    deregister, as ephemeral runners do: page 2, asked for next, starts ``SHIFT`` later."""

    def __init__(self, server: GitHubSimulator, kubelet: Kubelet, admin) -> None:
        self.kubelet = kubelet
        self.admin = admin
        self.finishing: list[str] = []
        self.fired = threading.Event()
        self._armed = threading.Event()
        self._handle = server.simulator.handle

    def arm(self, finishing: list[str]) -> None:
        self.finishing = finishing
        self._armed.set()

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes):
        outcome = self._handle(method, target, headers, body)
        url = urlsplit(target)
        query = parse_qs(url.query)
        full_listing_page_1 = (
            method == "GET"
            and url.path.endswith("/actions/runners")
            and "name" not in query
            and query.get("page", ["1"]) == ["1"]
        )
        if full_listing_page_1 and self._armed.is_set() and not self.fired.is_set():
            self._armed.clear()
            for name in self.finishing:
                self.admin.set_runner_state(name, "finished")
                self.kubelet.finish(name)
            self.fired.set()
        return outcome


def _pods(pipeline) -> dict[str, k8s.V1Pod]:
    pods = k8s.CoreV1Api(pipeline.kube_api).list_namespaced_pod(
        pipeline.namespace, label_selector="provisioner.dev/scale-set=runners"
    )
    return {p.metadata.name: p for p in pods.items}


def test_scale_down_over_two_pages_never_deletes_a_busy_runner(
    pipeline, kubelet, ghsim_server, monkeypatch
):
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=RUNNERS)
    pipeline.wait_for_runners(RUNNERS, timeout=180)
    kubelet.run_all()

    admin = pipeline.ghsim.admin
    by_id = [r["name"] for r in sorted(admin.registrations(), key=lambda r: r["id"])]
    # Listed in id order: these sit just after page 1 and slide onto it once SHIFT runners
    # of page 1 are gone, so page 2 no longer shows them.
    busy = by_id[PAGE : PAGE + SHIFT]
    for name in busy:
        admin.set_runner_state(name, "busy")
    # A fresh reconciler: its garbage collection, which lists runners too, first runs a
    # minute after it starts, so the listing the hook interrupts is the scale-down's.
    pipeline.reconcilers[0].stop(timeout=15)
    pipeline.start_reconciler()
    hook = DeregisterBetweenPages(ghsim_server, kubelet, admin)
    monkeypatch.setattr(ghsim_server.simulator, "handle", hook.handle)
    hook.arm(by_id[:SHIFT])

    pipeline.scale("runners", 0)

    wait_until(hook.fired.is_set, 60, "the scale-down's runner listing")
    wait_until(lambda: not set(_pods(pipeline)) - set(busy), 120, "every idle runner to go")
    pods = _pods(pipeline)
    deleted = [n for n in busy if n not in pods or pods[n].metadata.deletion_timestamp]
    assert deleted == [], f"busy runners whose Pods were deleted: {deleted}"
    registered = {r["name"]: r for r in admin.registrations()}
    assert sorted(registered) == sorted(busy)
    wait_until(
        lambda: (pipeline.scale_set().get("status") or {}).get("drainingRunners") == len(busy),
        30,
        f"{len(busy)} busy runners reported draining",
    )
    assert all(pods[name].status.phase == "Running" for name in busy)
