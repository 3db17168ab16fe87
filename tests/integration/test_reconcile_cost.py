"""What a reconcile pass costs the API server, against the real servers: the reconciler
counts a scale set's runner pods from its watch, so the pods are listed when the watch starts,
not on every pass (at 10,000 runners each listing carries 10,000 pods)."""

from __future__ import annotations

import re

import pytest
from kubernetes import client as k8s

from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

_POD_LISTS = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$")


def pod_lists(kube_api: k8s.ApiClient) -> int:
    """How many LIST requests of Pods the API server has answered since it started."""
    response = kube_api.rest_client.request("GET", f"{kube_api.configuration.host}/metrics")
    total = 0.0
    for line in response.read().decode().splitlines():
        match = _POD_LISTS.match(line)
        if match and 'resource="pods"' in match[1] and 'verb="LIST"' in match[1]:
            total += float(match[2])
    return int(total)


def test_reconcile_passes_count_pods_from_the_watch_not_from_listings(pipeline, kubelet):
    kubelet.auto_run()
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    before = pod_lists(pipeline.kube_api)

    # Each scale change, and each pod's progress, is a pass; the test watches GitHub and the
    # status only, so every pod listing below is the reconciler's.
    def ready(count: int) -> None:
        wait_until(
            lambda: (
                len(pipeline.ghsim.runner_names()) == count
                and (pipeline.scale_set().get("status") or {}).get("readyRunners") == count
            ),
            60,
            f"{count} ready runners",
        )

    pipeline.apply_scale_set(replicas=12)
    ready(12)
    pipeline.scale("runners", 4)
    ready(4)
    pipeline.scale("runners", 12)
    ready(12)

    listed = pod_lists(pipeline.kube_api) - before
    # The watch's first listing (and one more if it starts again); listing on every pass
    # made seven here.
    assert listed <= 2, f"the reconciler listed pods {listed} times"
    pipeline.wait_for_runners(12)
