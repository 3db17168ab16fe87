"""The kube-apiserver stops answering for ~11 s in the middle of a 100-runner batch. An outage
of a dependency is not the scale set's failure: the creations it interrupts ride it out
within their deadline, nothing is charged to the scale set's failure budget (no
CreationsFailing, no backoff), and the batch converges soon after the API is back."""

from __future__ import annotations

import time

import pytest
import redis
from kubernetes import client as k8s

from provisioner.failure_budget import CREATION_FAILURES, FailureBudget
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.chaos

BATCH = 100
# The API server is killed for this long; its start-up (3-6 s here) adds to the outage.
STOPPED_SECONDS = 7.0
CONVERGE_AFTER_OUTAGE_SECONDS = 15.0


def test_kube_apiserver_down_for_eleven_seconds_mid_batch(pipeline, control_plane):
    pipeline.ghsim.admin.configure(latency_ms=100)
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=BATCH)
    wait_until(lambda: pipeline.count().pods >= 20, 60, "20 runner pods")

    stopped_at = time.monotonic()
    control_plane.kill_apiserver()
    try:
        time.sleep(STOPPED_SECONDS)
    finally:
        control_plane.start_apiserver()
    outage = time.monotonic() - stopped_at
    assert 9 <= outage <= 20, f"the outage lasted {outage:.1f}s"

    pipeline.wait_for_runners(
        BATCH, timeout=stopped_at + outage + CONVERGE_AFTER_OUTAGE_SECONDS - time.monotonic()
    )
    fleet = pipeline.count()
    assert (fleet.pods, fleet.secrets, fleet.registrations) == (BATCH,) * 3, fleet
    pods = (
        k8s.CoreV1Api(pipeline.kube_api)
        .list_namespaced_pod(pipeline.namespace, label_selector="provisioner.dev/scale-set")
        .items
    )
    assert {r["name"] for r in pipeline.ghsim.admin.registrations()} == {
        p.metadata.name for p in pods
    }

    conditions = pipeline.scale_set()["status"].get("conditions") or []
    degraded = [c for c in conditions if c["type"] == "Degraded" and c["status"] == "True"]
    assert degraded == [], degraded
    budget = FailureBudget(redis.Redis.from_url(pipeline.redis_url), CREATION_FAILURES)
    key = f"{pipeline.namespace}/runners"
    assert (budget.describe(key), budget.backoff_remaining(key)) == ("", 0)
