"""Building a runner's Secret and Pod from a scale set, and reading a pod's state."""

from __future__ import annotations

import copy
import datetime

from kubernetes import client as k8s

from provisioner.kube.runner_objects import build_pod, build_secret, runner_pod_state
from provisioner.kube.scaleset import ScaleSet

TEMPLATE = {
    "metadata": {"labels": {"team": "ci"}, "annotations": {"note": "kept"}, "name": "ignored"},
    "spec": {
        "restartPolicy": "Always",
        "containers": [
            {"name": "dind", "image": "docker:dind"},
            {
                "name": "runner",
                "image": "runner:1",
                "env": [
                    {"name": "RUNNER_FEATURE", "value": "on"},
                    {"name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "value": "stale"},
                ],
            },
        ],
    },
}


def scale_set(template: dict | None = None, generation: int = 1, name: str = "ci") -> ScaleSet:
    return ScaleSet.from_object(
        {
            "metadata": {
                "name": name,
                "namespace": "runners",
                "uid": "u-1",
                "generation": generation,
            },
            "spec": {
                "githubConfigUrl": "https://github.com/acme",
                "githubConfigSecret": "gh",
                "template": copy.deepcopy(template or TEMPLATE),
            },
        }
    )


def jit_env(container: dict) -> list[dict]:
    return [e for e in container.get("env", []) if e["name"] == "ACTIONS_RUNNER_INPUT_JITCONFIG"]


def test_the_pod_is_the_template_with_our_labels_owner_and_jit_config():
    pod = build_pod(scale_set(), "ci-abcde")
    assert pod["metadata"]["name"] == "ci-abcde"
    assert pod["metadata"]["namespace"] == "runners"
    assert pod["metadata"]["labels"] == {
        "team": "ci",
        "provisioner.dev/scale-set": "ci",
        "provisioner.dev/runner": "ci-abcde",
    }
    assert pod["metadata"]["annotations"] == {"note": "kept"}
    (owner,) = pod["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "provisioner.dev/v1alpha1",
        "kind": "RunnerScaleSet",
        "name": "ci",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert pod["spec"]["restartPolicy"] == "Never"
    dind, runner = pod["spec"]["containers"]
    assert jit_env(dind) == []
    assert runner["env"] == [
        {"name": "RUNNER_FEATURE", "value": "on"},
        {
            "name": "ACTIONS_RUNNER_INPUT_JITCONFIG",
            "valueFrom": {"secretKeyRef": {"name": "ci-abcde", "key": "jitconfig"}},
        },
    ]


def test_without_a_container_named_runner_the_first_gets_the_jit_config():
    template = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}
    first, second = build_pod(scale_set(template, name="plain"), "plain-abcde")["spec"][
        "containers"
    ]
    assert jit_env(first)[0]["valueFrom"]["secretKeyRef"]["name"] == "plain-abcde"
    assert jit_env(second) == []


def test_pods_of_one_generation_differ_only_by_name_and_a_new_generation_is_rendered_anew():
    first = build_pod(scale_set(), "ci-aaaaa")
    second = build_pod(scale_set(), "ci-bbbbb")
    assert first["metadata"]["labels"]["provisioner.dev/runner"] == "ci-aaaaa"
    assert jit_env(first["spec"]["containers"][1])[0]["valueFrom"]["secretKeyRef"]["name"] == (
        "ci-aaaaa"
    )
    assert second["metadata"]["name"] == "ci-bbbbb"

    changed = copy.deepcopy(TEMPLATE)
    changed["spec"]["containers"][1]["image"] = "runner:2"
    third = build_pod(scale_set(changed, generation=2), "ci-ccccc")
    assert third["spec"]["containers"][1]["image"] == "runner:2"
    assert build_pod(scale_set(), "ci-ddddd")["spec"]["containers"][1]["image"] == "runner:1"


def test_the_secret_holds_the_jit_config_and_is_owned():
    secret = build_secret(scale_set(), "ci-abcde", "ENCODED")
    assert secret.type == "Opaque"
    assert secret.string_data == {"jitconfig": "ENCODED"}
    assert secret.metadata.labels == {
        "provisioner.dev/scale-set": "ci",
        "provisioner.dev/runner": "ci-abcde",
    }
    (owner,) = secret.metadata.owner_references
    assert (owner.kind, owner.uid, owner.controller, owner.block_owner_deletion) == (
        "RunnerScaleSet",
        "u-1",
        True,
        True,
    )


STARTED = datetime.datetime(2026, 1, 1, 0, 0, 10, tzinfo=datetime.UTC)


def pod(phase: str | None, statuses=(), ready: tuple[str, datetime.datetime] | None = None):
    conditions = []
    if ready is not None:
        conditions.append(
            k8s.V1PodCondition(type="Ready", status=ready[0], last_transition_time=ready[1])
        )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="ci-abcde"),
        spec=k8s.V1PodSpec(
            containers=[
                k8s.V1Container(name="dind", image="docker:dind"),
                k8s.V1Container(name="runner", image="runner:1"),
            ]
        ),
        status=k8s.V1PodStatus(
            phase=phase, container_statuses=list(statuses), conditions=conditions
        ),
    )


def status(name: str, **state) -> k8s.V1ContainerStatus:
    return k8s.V1ContainerStatus(
        name=name,
        image="x",
        image_id="",
        ready=False,
        restart_count=0,
        state=k8s.V1ContainerState(**state),
    )


def waiting(name: str, reason: str) -> k8s.V1ContainerStatus:
    return status(name, waiting=k8s.V1ContainerStateWaiting(reason=reason))


def terminated(name: str, exit_code: int) -> k8s.V1ContainerStatus:
    return status(
        name,
        terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code, started_at=STARTED),
    )


def test_phases():
    assert runner_pod_state(pod(None)) == "pending"
    assert runner_pod_state(pod("Pending", [waiting("runner", "ContainerCreating")])) == "pending"
    assert runner_pod_state(pod("Running")) == "running"
    assert runner_pod_state(pod("Succeeded")) == "finished"
    assert runner_pod_state(pod("Failed")) == "finished"


def test_containers_that_cannot_start():
    for reason in ("ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff"):
        assert runner_pod_state(pod("Pending", [waiting("runner", reason)])) == "failed_to_start"
    sidecar = pod("Pending", [waiting("dind", "CreateContainerConfigError")])
    assert runner_pod_state(sidecar) == "failed_to_start"


def test_a_runner_that_exits_before_the_pod_was_ever_ready_failed_to_start():
    never_ready = ("False", STARTED - datetime.timedelta(seconds=5))
    exited = pod("Running", [terminated("runner", 1)], ready=never_ready)
    assert runner_pod_state(exited) == "failed_to_start"
    assert runner_pod_state(pod("Running", [terminated("runner", 1)])) == "failed_to_start"


def test_a_runner_that_exits_after_being_ready_finished_while_its_sidecar_runs():
    lost_readiness_on_exit = ("False", STARTED + datetime.timedelta(minutes=3))
    done = pod("Running", [terminated("runner", 0)], ready=lost_readiness_on_exit)
    assert runner_pod_state(done) == "finished"
    sidecar_exited = pod("Running", [terminated("dind", 0)], ready=("True", STARTED))
    assert runner_pod_state(sidecar_exited) == "running"
