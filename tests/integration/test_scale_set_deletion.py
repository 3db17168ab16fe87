"""Deleting a RunnerScaleSet in the middle of a batch: the resource goes, and with it every
runner it was making (registrations, Secrets, Pods), its ledger and what the long-running
processes kept about it (metric series). The local control plane has no
kube-controller-manager, so no owner-reference garbage collection: what is left is really left."""

from __future__ import annotations

import httpx
import pytest
import redis
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from provisioner.creation import outcome
from provisioner.devenv.procs import free_port
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.runner_objects import SCALE_SET_LABEL
from provisioner.ledger import LEDGER_PREFIX, SCALE_SETS_KEY, BatchProgress
from provisioner.runtime.scale_sets import FORGET_DELETED_SECONDS
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

BATCH = 60
# A result with no reason (a created runner) is labelled reason="".
REASONS = {value for name, value in vars(outcome).items() if name.startswith("REASON_")} | {""}


def _series(port: int) -> list[tuple[str, dict[str, str]]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _gone(pipeline, name: str) -> bool:
    try:
        pipeline.scale_set(name)
    except k8s.exceptions.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _leftovers(pipeline, name: str, store: redis.Redis) -> dict[str, int]:
    core = k8s.CoreV1Api(pipeline.kube_api)
    selector = f"{SCALE_SET_LABEL}={name}"
    key = f"{pipeline.namespace}/{name}"
    return {
        # Every pod, whatever its phase: nothing else would ever delete it here.
        "pods": len(core.list_namespaced_pod(pipeline.namespace, label_selector=selector).items),
        "secrets": len(
            core.list_namespaced_secret(pipeline.namespace, label_selector=selector).items
        ),
        "registrations": sum(
            1 for r in pipeline.ghsim.admin.registrations() if r["name"].startswith(f"{name}-")
        ),
        "ledger entries": store.hlen(LEDGER_PREFIX + key),
        "ledger index": int(bool(store.sismember(SCALE_SETS_KEY, key))),
    }


def _batch_id(store: redis.Redis, key: str) -> str:
    for raw in store.scan_iter("provisioner:batch:*"):
        batch_id = raw.decode().removeprefix("provisioner:batch:")
        progress = BatchProgress(store).get(batch_id)
        if progress and progress["scale_set"] == key and progress["total"] == BATCH:
            return batch_id
    raise LookupError(f"no batch of {BATCH} for {key} in Redis")


def test_deleting_a_scale_set_mid_batch_leaves_nothing_behind(pipeline):
    # A slow GitHub and a small creation budget stretch the batch over several seconds, so
    # the deletion lands with most runners still queued or under way.
    pipeline.ghsim.admin.configure(latency_ms=300)
    pipeline.settings_env["PROVISIONER_RUNNER_CREATION_CONCURRENCY"] = "5"
    worker_ports = [free_port(), free_port()]
    for port in worker_ports:
        pipeline.start_workers(1, env={"PROVISIONER_METRICS_PORT": str(port)})
    reconciler_port = free_port()
    pipeline.start_reconciler(env={"PROVISIONER_METRICS_PORT": str(reconciler_port)})
    store = redis.Redis.from_url(pipeline.redis_url)
    namespace = pipeline.namespace
    key = f"{namespace}/runners"

    # A neighbour that stays: forgetting the deleted scale set must not touch its series.
    pipeline.apply_scale_set("keep", replicas=2)
    wait_until(lambda: pipeline.count("keep").pods == 2, 60, "the neighbour's 2 runner pods")

    pipeline.apply_scale_set("runners", replicas=BATCH)
    wait_until(lambda: pipeline.count("runners").pods >= 5, 60, "5 runner pods")
    pipeline.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "runners")
    batch_id = _batch_id(store, key)
    at_deletion = BatchProgress(store).get(batch_id)
    assert at_deletion is not None and at_deletion["done"] < BATCH // 2, at_deletion

    wait_until(lambda: _gone(pipeline, "runners"), 30, "the RunnerScaleSet to be gone")
    nothing = dict.fromkeys(("pods", "secrets", "registrations", "ledger entries"), 0)
    nothing["ledger index"] = 0
    leftovers = _leftovers(pipeline, "runners", store)
    assert leftovers == nothing, f"left behind: {leftovers}"

    # The batch's queued tasks still run after the deletion (each finds its runner
    # cancelled), and its report comes last: none of them brings anything back.
    def batch_reported() -> bool:
        progress = BatchProgress(store).get(batch_id) or {}
        logs = "".join(w.log_path.read_text() for w in pipeline.workers.processes)
        return progress.get("done") == BATCH and f"batch {batch_id} of {key}: Created" in logs

    wait_until(batch_reported, 30, "every task of the batch to finish and its report")
    # Only the creations under way at the deletion (at most the two workers' 5 threads each)
    # made a runner; the queued ones made none.
    created = (BatchProgress(store).get(batch_id) or {})["outcomes"].get("created", 0)
    assert created <= at_deletion["done"] + 10, (at_deletion, created)
    leftovers = _leftovers(pipeline, "runners", store)
    assert leftovers == nothing, f"left behind after the batch ended: {leftovers}"
    assert pipeline.count("keep").pods == 2

    # The worker and reconciler processes forget the deleted scale set's series (a worker
    # looks for deleted scale sets periodically: no task tells it) and keep the neighbour's;
    # every failure reason is one of the bounded set.
    def reported(port: int) -> set[str]:
        return {n for n, labels in _series(port) if labels.get("scale_set") == key}

    ports = [*worker_ports, reconciler_port]
    try:
        wait_until(
            lambda: not any(reported(port) for port in ports),
            FORGET_DELETED_SECONDS + 10,
            f"the processes to forget {key}",
        )
    except AssertionError:
        raise AssertionError(
            f"still reporting {key}: {[(port, sorted(reported(port))) for port in ports]}"
        ) from None
    for port in ports:
        reasons = {labels["reason"] for _, labels in _series(port) if "reason" in labels}
        assert reasons <= REASONS, f"unbounded reason labels on port {port}: {reasons - REASONS}"
    kept = {labels.get("scale_set") for port in worker_ports for _, labels in _series(port)}
    assert f"{namespace}/keep" in kept
    reconciler_kept = {labels.get("scale_set") for _, labels in _series(reconciler_port)}
    assert f"{namespace}/keep" in reconciler_kept
