"""Chaos: each scenario breaks something in the middle of a batch against the real servers, and
must still end at exactly the desired count with no leaked registration, Secret or Pod."""

from __future__ import annotations

import random
import signal
import time

import pytest
from kubernetes import client as k8s

from provisioner.cli.worker import THREADS_PER_SLOT
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.chaos

# Short creation timeouts make redelivery after a killed worker quick (visibility timeout is
# 2 x timeout + 30 s).
FAST_RECOVERY = {"PROVISIONER_RUNNER_CREATION_TIMEOUT": "10"}


def _wait_for_progress(pipeline, at_least: int, timeout: float = 60) -> None:
    wait_until(
        lambda: pipeline.count().pods >= at_least, timeout, f"at least {at_least} runner pods"
    )


def _assert_no_leaks(pipeline, desired: int) -> None:
    fleet = pipeline.count()
    assert (fleet.pods, fleet.secrets, fleet.registrations) == (desired,) * 3, fleet
    names = {r["name"] for r in pipeline.ghsim.admin.registrations()}
    pods = {
        p.metadata.name
        for p in k8s.CoreV1Api(pipeline.kube_api)
        .list_namespaced_pod(pipeline.namespace, label_selector="provisioner.dev/scale-set")
        .items
    }
    assert names == pods


def test_sigkill_of_a_worker_mid_batch(pipeline):
    pipeline.settings_env.update(FAST_RECOVERY)
    pipeline.ghsim.admin.configure(latency_ms=100)
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=100)

    _wait_for_progress(pipeline, 20)
    pipeline.workers.processes[0].process.send_signal(signal.SIGKILL)

    pipeline.wait_for_runners(100, timeout=240)
    _assert_no_leaks(pipeline, 100)


def test_reconciler_restart_mid_batch(pipeline):
    pipeline.ghsim.admin.configure(latency_ms=100)
    pipeline.start_workers(2)
    first = pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=60)

    _wait_for_progress(pipeline, 10)
    first.process.send_signal(signal.SIGKILL)
    pipeline.start_reconciler()

    pipeline.wait_for_runners(60, timeout=180)
    _assert_no_leaks(pipeline, 60)


def test_two_reconciler_replicas_never_double_a_batch(pipeline):
    pipeline.ghsim.admin.configure(latency_ms=50)
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=40)

    pipeline.wait_for_runners(40, timeout=120)
    time.sleep(3)  # a doubled plan would show up as extra runners by now
    _assert_no_leaks(pipeline, 40)


def test_redis_down_for_ten_seconds_mid_batch(pipeline, redis_server):
    pipeline.ghsim.admin.configure(latency_ms=100)
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=50)

    _wait_for_progress(pipeline, 10)
    redis_server.stop()
    time.sleep(10)
    redis_server.start()

    # Tasks a worker had reserved when Redis went away come back after the broker's
    # visibility timeout (90 s here), or the reconciler plans them again at their deadline.
    pipeline.wait_for_runners(50, timeout=300)
    _assert_no_leaks(pipeline, 50)
    # The workers rode out the outage: none exited on the lost broker connection.
    assert [w.process.poll() for w in pipeline.workers.processes] == [None, None]


def test_github_429_for_twenty_seconds_then_recovering(pipeline):
    pipeline.settings_env.update({"PROVISIONER_RUNNER_CREATION_TIMEOUT": "60"})
    pipeline.ghsim.admin.configure(throttle_until=time.time() + 20)
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=30)

    pipeline.wait_for_runners(30, timeout=240)
    _assert_no_leaks(pipeline, 30)
    counters = pipeline.ghsim.admin.counters()
    assert counters["secondary_rate_limited"] > 0
    # Every worker waited out the retry-after: a handful of refusals, not a storm of retries.
    assert counters["secondary_rate_limited"] < 30, counters


def test_quota_admits_part_of_the_batch_then_is_raised(pipeline):
    core = k8s.CoreV1Api(pipeline.kube_api)
    core.create_namespaced_resource_quota(
        pipeline.namespace,
        k8s.V1ResourceQuota(metadata={"name": "pods"}, spec={"hard": {"pods": "10"}}),
    )
    core.patch_namespaced_resource_quota_status(
        "pods", pipeline.namespace, {"status": {"hard": {"pods": "10"}, "used": {"pods": "0"}}}
    )
    pipeline.settings_env.update({"PROVISIONER_RUNNER_CREATION_TIMEOUT": "5"})
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=25)

    wait_until(lambda: pipeline.count().pods == 10, 60, "the quota to fill")
    time.sleep(3)
    # At most the creations in flight: one per worker thread (two per slot of the budget).
    in_flight = THREADS_PER_SLOT * 10
    assert pipeline.count().registrations <= 10 + in_flight
    core.patch_namespaced_resource_quota(
        "pods", pipeline.namespace, {"spec": {"hard": {"pods": "100"}}}
    )
    core.patch_namespaced_resource_quota_status(
        "pods", pipeline.namespace, {"status": {"hard": {"pods": "100"}}}
    )
    pipeline.wait_for_runners(25, timeout=240)
    _assert_no_leaks(pipeline, 25)


def test_connections_to_github_dropped_at_random(pipeline):
    pipeline.ghsim.admin.configure(drop_rate=0.3, fault_endpoint="all")
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=30)

    _wait_for_progress(pipeline, 10, timeout=120)
    pipeline.ghsim.admin.configure(drop_rate=0.0)
    pipeline.wait_for_runners(30, timeout=240)
    _assert_no_leaks(pipeline, 30)


def test_scale_to_zero_while_thirty_runners_are_busy(pipeline):
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=100)
    pipeline.wait_for_runners(100, timeout=180)
    busy = random.Random(7).sample(
        sorted(r["name"] for r in pipeline.ghsim.admin.registrations()), 30
    )
    for name in busy:
        pipeline.ghsim.admin.set_runner_state(name, "busy")

    pipeline.scale("runners", 0)
    wait_until(lambda: pipeline.count().pods == 30, 180, "the 70 idle runners to go")
    assert sorted(r["name"] for r in pipeline.ghsim.admin.registrations()) == sorted(busy)

    core = k8s.CoreV1Api(pipeline.kube_api)
    for name in busy:
        pipeline.ghsim.admin.set_runner_state(name, "finished")
        core.patch_namespaced_pod_status(
            name, pipeline.namespace, {"status": {"phase": "Succeeded"}}
        )
    pipeline.wait_for_runners(0, timeout=120)
