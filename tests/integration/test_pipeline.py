"""The provisioning pipeline end to end: real kube-apiserver, redis-server, Celery worker
processes, reconciler process and GitHub simulator."""

from __future__ import annotations

import re
import time

import pytest
from kubernetes import client as k8s

from provisioner.ledger import Ledger, LedgerEntry
from provisioner.runtime.queue import CREATE_RUNNER
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration


def _runner_links(pipeline, name: str = "runners") -> dict[str, tuple[str, str]]:
    """For each runner pod: the Secret its runner container reads, and the pod's owner."""
    core = k8s.CoreV1Api(pipeline.kube_api)
    pods = core.list_namespaced_pod(
        pipeline.namespace, label_selector=f"provisioner.dev/scale-set={name}"
    ).items
    links = {}
    for pod in pods:
        runner = next(c for c in pod.spec.containers if c.name == "runner")
        jit = next(e for e in runner.env if e.name == "ACTIONS_RUNNER_INPUT_JITCONFIG")
        links[pod.metadata.name] = (
            jit.value_from.secret_key_ref.name,
            pod.metadata.owner_references[0].name,
        )
    return links


def test_scale_up_then_down_then_up_ends_exactly_at_desired(pipeline):
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=0)

    pipeline.scale("runners", 50)
    pipeline.wait_for_runners(50)
    links = _runner_links(pipeline)
    registrations = {r["name"] for r in pipeline.ghsim.admin.registrations()}
    secrets = {
        s.metadata.name
        for s in k8s.CoreV1Api(pipeline.kube_api)
        .list_namespaced_secret(
            pipeline.namespace, label_selector="provisioner.dev/scale-set=runners"
        )
        .items
    }
    assert set(links) == registrations == secrets
    assert all(secret == pod and owner == "runners" for pod, (secret, owner) in links.items())
    # Progress is logged during the batch, and the batch's end is reported as an Event.
    logs = "".join(w.log_path.read_text() for w in pipeline.workers.processes)
    progress = re.findall(r"created (\d+)/50 ", logs)
    assert len(progress) >= 5 and "50" in progress, progress
    assert "Created 50/50 runners" in [e.message for e in pipeline.events()]

    pipeline.scale("runners", 20)
    pipeline.wait_for_runners(20)
    pipeline.scale("runners", 60)
    pipeline.wait_for_runners(60)
    status = pipeline.scale_set()["status"]
    assert status["replicas"] == 60
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


def test_failed_github_calls_are_retried_and_leave_nothing_behind(pipeline):
    pipeline.ghsim.admin.configure(error_rate=0.2, error_endpoint="generate-jitconfig")
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=30)

    pipeline.wait_for_runners(30)
    counters = pipeline.ghsim.admin.counters()
    assert _calls(counters, "generate-jitconfig", 500) > 0, counters
    # Every registration belongs to a complete runner: failed attempts left none behind.
    assert len(pipeline.ghsim.admin.registrations()) == 30


def test_two_workers_together_keep_to_the_global_github_rate(pipeline):
    # The simulator refuses more than 120 runner registrations a minute (2/s); the shared
    # bucket is set just under it, so no worker may push past it, however many there are.
    pipeline.ghsim.admin.configure(secondary_jitconfig_per_minute=120)
    pipeline.settings_env.update(
        PROVISIONER_GITHUB_REQUESTS_PER_SECOND="1.8",
        PROVISIONER_GITHUB_BURST="1",
        PROVISIONER_RUNNER_CREATION_TIMEOUT="60",
    )
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=12)

    pipeline.wait_for_runners(12, timeout=90)
    counters = pipeline.ghsim.admin.counters()
    assert _calls(counters, "generate-jitconfig", 201) == 12
    assert _throttled(counters) == 0, counters


def test_a_task_delivered_twice_creates_one_runner(pipeline, send_task):
    import redis

    pipeline.start_workers(2)
    pipeline.apply_scale_set(replicas=0)
    scale_set = f"{pipeline.namespace}/runners"
    entry = LedgerEntry(scale_set, "runners-twice", "batch-1", time.time() + 120)
    Ledger(redis.Redis.from_url(pipeline.redis_url)).record([entry])

    first = send_task(CREATE_RUNNER, [entry.to_dict(), None])
    second = send_task(CREATE_RUNNER, [entry.to_dict(), None])
    outcomes = sorted([first.get(timeout=60)["outcome"], second.get(timeout=60)["outcome"]])

    assert outcomes == ["created", "skipped"]
    fleet = pipeline.count()
    assert (fleet.pods, fleet.secrets, fleet.registrations) == (1, 1, 1)


def test_callback_reports_partial_failure_with_its_reason(pipeline):
    # A quota of 3 pods: a batch of 5 can create only 3 runners.
    core = k8s.CoreV1Api(pipeline.kube_api)
    core.create_namespaced_resource_quota(
        pipeline.namespace,
        k8s.V1ResourceQuota(metadata={"name": "pods"}, spec={"hard": {"pods": "3"}}),
    )
    # No controller-manager computes the quota's usage here; start it at zero by hand.
    core.patch_namespaced_resource_quota_status(
        "pods", pipeline.namespace, {"status": {"hard": {"pods": "3"}, "used": {"pods": "0"}}}
    )
    pipeline.settings_env.update(
        PROVISIONER_RUNNER_CREATION_TIMEOUT="4", PROVISIONER_CREATE_MAX_ATTEMPTS="2"
    )
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=5)

    def first_batch():
        status = pipeline.scale_set().get("status") or {}
        return status.get("lastBatch")

    batch = wait_until(first_batch, 90, "the first batch's report")
    assert (batch["created"], batch["failed"]) == (3, 2), batch
    assert batch["failedByReason"] == {"quota exceeded": 2}
    degraded = next(
        c for c in pipeline.scale_set()["status"]["conditions"] if c["type"] == "Degraded"
    )
    assert degraded["status"] == "True"
    assert "2 failed: quota exceeded" in degraded["message"]
    messages = [e.message for e in pipeline.events()]
    assert "Created 3/5 runners; 2 failed: quota exceeded" in messages, messages
    # Failed creations leave nothing behind: with desired lowered to what the quota admits,
    # replacements stop and exactly the 3 runners remain at GitHub and in the cluster.
    pipeline.scale("runners", 3)
    pipeline.wait_for_runners(3)


def test_sequential_mode_reaches_the_same_end_state(pipeline):
    pipeline.start_reconciler({"PROVISIONER_PARALLEL_CREATION": "false"})
    pipeline.apply_scale_set(replicas=8)
    pipeline.wait_for_runners(8)
    pipeline.scale("runners", 3)
    pipeline.wait_for_runners(3)
    links = _runner_links(pipeline)
    assert len(links) == 3
    assert all(secret == pod for pod, (secret, _) in links.items())


def _calls(counters: dict, endpoint: str, status: int) -> int:
    """Calls answered ``status`` on every scope's variant of ``endpoint``."""
    return sum(
        int(outcomes.get(str(status), 0))
        for template, outcomes in counters["calls"].items()
        if endpoint in template
    )


def _throttled(counters: dict) -> int:
    return counters["primary_rate_limited"] + counters["secondary_rate_limited"]
