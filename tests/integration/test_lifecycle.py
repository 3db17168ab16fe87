"""Runner lifecycle against the real servers: scale-down spares busy runners, finished runners
are replaced, failing templates back off, deletion removes registrations, gc removes leaks."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import httpx
import pytest
from kubernetes import client as k8s

from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.scaleset import ScaleSet, owner_reference
from provisioner.naming import owner_label
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration


def _registrations(pipeline) -> dict[str, dict]:
    return {r["name"]: r for r in pipeline.ghsim.admin.registrations()}


def test_scale_down_removes_idle_runners_and_keeps_busy_ones_until_they_finish(pipeline):
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=6)
    pipeline.wait_for_runners(6)
    busy = sorted(_registrations(pipeline))[:2]
    for name in busy:
        pipeline.ghsim.admin.set_runner_state(name, "busy")

    pipeline.scale("runners", 0)

    def only_busy_left() -> bool:
        fleet = pipeline.count()
        return (fleet.pods, fleet.registrations) == (2, 2)

    wait_until(only_busy_left, 60, "the idle runners to go")
    assert sorted(_registrations(pipeline)) == busy
    status = pipeline.scale_set()["status"]
    wait_until(
        lambda: pipeline.scale_set()["status"].get("drainingRunners") == 2,
        30,
        f"status to show 2 draining runners (now {status.get('drainingRunners')})",
    )

    # The jobs finish: the ephemeral runners deregister and their pods complete.
    core = k8s.CoreV1Api(pipeline.kube_api)
    for name in busy:
        pipeline.ghsim.admin.set_runner_state(name, "finished")
        core.patch_namespaced_pod_status(
            name, pipeline.namespace, {"status": {"phase": "Succeeded"}}
        )
    pipeline.wait_for_runners(0)


def test_a_finished_runner_is_cleaned_up_and_replaced(pipeline):
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=3)
    pipeline.wait_for_runners(3)
    finished = sorted(_registrations(pipeline))[0]

    pipeline.ghsim.admin.set_runner_state(finished, "finished")
    k8s.CoreV1Api(pipeline.kube_api).patch_namespaced_pod_status(
        finished, pipeline.namespace, {"status": {"phase": "Succeeded"}}
    )

    def replaced() -> bool:
        names = set(_registrations(pipeline))
        return finished not in names and len(names) == 3

    wait_until(replaced, 60, "a replacement runner")
    pipeline.wait_for_runners(3)
    secrets = k8s.CoreV1Api(pipeline.kube_api).list_namespaced_secret(pipeline.namespace).items
    assert finished not in {s.metadata.name for s in secrets}


def test_deleting_the_scale_set_removes_its_registrations_pods_and_secrets(pipeline):
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=4)
    pipeline.wait_for_runners(4)

    k8s.CustomObjectsApi(pipeline.kube_api).delete_namespaced_custom_object(
        GROUP, VERSION, pipeline.namespace, PLURAL, "runners"
    )

    def gone() -> bool:
        try:
            pipeline.scale_set()
        except k8s.exceptions.ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, 60, "the RunnerScaleSet to be deleted")
    fleet = pipeline.count()
    assert (fleet.pods, fleet.secrets, fleet.registrations) == (0, 0, 0)


def test_gc_removes_leaked_registrations_and_secrets(pipeline):
    created = pipeline.apply_scale_set(replicas=0)
    scale_set = ScaleSet.from_object(created)
    # A crash after registering and writing the Secret, before the Pod: both are leaks, marked
    # as the scale set's own (owner label, controller reference) as a creation marks them.
    jit_body = {
        "name": "runners-leak1",
        "runner_group_id": 1,
        "labels": ["self-hosted", owner_label(scale_set.uid)],
    }
    response = httpx.post(
        f"{pipeline.ghsim.url}/repos/octo-org/octo-repo/actions/runners/generate-jitconfig",
        json=jit_body,
        headers=pipeline.ghsim.auth_headers,
    )
    assert response.status_code == 201, response.text
    k8s.CoreV1Api(pipeline.kube_api).create_namespaced_secret(
        pipeline.namespace,
        k8s.V1Secret(
            metadata={
                "name": "runners-leak1",
                "labels": {"provisioner.dev/scale-set": "runners"},
                "ownerReferences": [owner_reference(scale_set)],
            },
            data={"jitconfig": base64.b64encode(b"x").decode()},
        ),
    )
    env = pipeline.env

    def gc(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "provisioner", "gc", *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    dry = gc("--dry-run")
    assert "would remove registration runners-leak1" in dry
    assert "would remove secret runners-leak1" in dry
    assert pipeline.count().registrations == 1

    removed = gc()
    assert "removed registration runners-leak1" in removed
    fleet = pipeline.count()
    assert (fleet.secrets, fleet.registrations) == (0, 0)


def test_runners_that_fail_to_start_are_replaced_then_backed_off_with_the_reason(pipeline, kubelet):
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=2)
    pipeline.wait_for_runners(2)
    core = k8s.CoreV1Api(pipeline.kube_api)

    def runner_pods() -> set[str]:
        pods = core.list_namespaced_pod(
            pipeline.namespace, label_selector="provisioner.dev/scale-set=runners"
        ).items
        return {p.metadata.name for p in pods}

    failed: set[str] = set()
    for _ in range(2):
        for name in runner_pods() - failed:
            kubelet.fail_to_start(name, reason="ImagePullBackOff")
            failed.add(name)
        # Each failed pod is removed with its Secret and registration, and replaced.
        wait_until(
            lambda: len(runner_pods() - failed) == 2 and not runner_pods() & failed,
            90,
            "replacements for the pods that failed to start",
        )

    def degraded_message() -> str:
        conditions = pipeline.scale_set().get("status", {}).get("conditions", [])
        degraded = next((c for c in conditions if c["type"] == "Degraded"), {})
        return degraded.get("message", "") if degraded.get("status") == "True" else ""

    message = wait_until(degraded_message, 30, "a Degraded condition")
    assert "ImagePullBackOff" in message and "spec.template" in message, message
    assert not {r["name"] for r in pipeline.ghsim.admin.registrations()} & failed
