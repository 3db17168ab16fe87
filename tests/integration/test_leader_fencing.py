"""A reconciler that lost its leader Lease writes nothing after it: the sequential creation of
a batch stops at the next runner, and no new batch is planned."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import redis
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from provisioner.ledger import Ledger
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

LEASE = "runner-provisioner-reconciler"
BATCH = 40


def _take_lease(api: k8s.ApiClient, namespace: str) -> None:
    """Another candidate holds the Lease now, for an hour."""
    coordination = k8s.CoordinationV1Api(api)
    for _ in range(20):
        lease = coordination.read_namespaced_lease(LEASE, namespace)
        lease.spec.holder_identity = "another-reconciler"
        lease.spec.renew_time = dt.datetime.now(dt.UTC)
        lease.spec.acquire_time = lease.spec.renew_time
        lease.spec.lease_duration_seconds = 3600
        try:
            coordination.replace_namespaced_lease(LEASE, namespace, lease)
            return
        except ApiException as exc:
            if exc.status != 409:  # renewed meanwhile: read it again
                raise
    raise AssertionError("could not take the Lease over")


def test_a_reconciler_that_lost_its_lease_stops_writing(pipeline):
    # One runner every ~0.5 s or more, created by the reconciler itself: the batch takes
    # ~20 s, long enough to take the Lease away in the middle of it.
    pipeline.settings_env["PROVISIONER_PARALLEL_CREATION"] = "false"
    pipeline.ghsim.admin.configure(latency_ms=500)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=BATCH)
    ledger = Ledger(redis.Redis.from_url(pipeline.redis_url))
    key = f"{pipeline.namespace}/runners"

    wait_until(lambda: pipeline.count().pods >= 3, 60, "the first runners of the batch")
    _take_lease(pipeline.kube_api, pipeline.namespace)
    taken_at = pipeline.count().pods
    planned = {e.name for e in ledger.in_flight(key, time.time())}

    # The next Lease round (every 2 s) finds another holder: the runner being created then
    # is finished, no other is begun.
    log = pipeline.reconcilers[0].log_path
    wait_until(lambda: "stopped leading" in log.read_text(), 10, "the reconciler to step down")
    stepped_down = pipeline.count()
    time.sleep(8)
    later = pipeline.count()

    assert stepped_down.pods - taken_at <= 5, (taken_at, stepped_down)
    assert later.pods - stepped_down.pods <= 1, (stepped_down, later)
    assert later.pods == later.secrets == later.registrations < BATCH, later
    # Nothing was planned after the Lease was gone.
    assert {e.name for e in ledger.in_flight(key, time.time())} <= planned
