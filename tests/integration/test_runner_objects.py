"""Runner Secrets and Pods, the scale set store and the kubelet stand-in against a real
kube-apiserver."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client as k8s

from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.github.auth import PatCredentials
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.errors import KubeInvalid
from provisioner.kube.runner_objects import RunnerObjects, runner_pod_state
from provisioner.kube.scaleset import GitHubSecretError, ScaleSet, ScaleSetStore, with_condition
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

JIT = "ZW5jb2RlZC1qaXQtY29uZmln"
T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def create_scale_set(kube_api: k8s.ApiClient, namespace: str, name: str = "runners") -> ScaleSet:
    obj = k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, scale_set_manifest(name, 2, 10)
    )
    return ScaleSet.from_object(obj)


def make_runner(objects: RunnerObjects, scale_set: ScaleSet, name: str) -> None:
    assert objects.create_secret(scale_set, name, JIT)
    assert objects.create_pod(scale_set, name)


def test_creating_twice_makes_one_secret_and_one_pod(kube_api, namespace):
    scale_set = create_scale_set(kube_api, namespace)
    objects = RunnerObjects(kube_api, namespace)

    assert objects.create_secret(scale_set, "runners-aaaaa", JIT) is True
    assert objects.create_secret(scale_set, "runners-aaaaa", "other") is False
    assert objects.create_pod(scale_set, "runners-aaaaa") is True
    assert objects.create_pod(scale_set, "runners-aaaaa") is False

    secret = k8s.CoreV1Api(kube_api).read_namespaced_secret("runners-aaaaa", namespace)
    assert base64.b64decode(secret.data["jitconfig"]).decode() == JIT  # the first one kept
    (pod,) = objects.list_runner_pods("runners")
    assert pod.metadata.labels["provisioner.dev/runner"] == "runners-aaaaa"
    env = {e.name: e for e in pod.spec.containers[0].env}
    ref = env["ACTIONS_RUNNER_INPUT_JITCONFIG"].value_from.secret_key_ref
    assert (ref.name, ref.key) == ("runners-aaaaa", "jitconfig")
    assert pod.spec.restart_policy == "Never"
    for obj in (secret, pod):
        (owner,) = obj.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("RunnerScaleSet", "runners", scale_set.uid)
        assert owner.controller is True


def test_lists_are_per_scale_set_and_delete_tolerates_missing_objects(kube_api, namespace):
    first = create_scale_set(kube_api, namespace, "first")
    second = create_scale_set(kube_api, namespace, "second")
    objects = RunnerObjects(kube_api, namespace)
    make_runner(objects, first, "first-aaaaa")
    make_runner(objects, first, "first-bbbbb")
    make_runner(objects, second, "second-aaaaa")

    assert sorted(p.metadata.name for p in objects.list_runner_pods("first")) == [
        "first-aaaaa",
        "first-bbbbb",
    ]
    objects.delete_runner_objects("first-aaaaa")
    objects.delete_runner_objects("first-aaaaa")  # already gone: fine
    assert objects.create_secret(first, "first-ccccc", JIT)
    objects.delete_runner_objects("first-ccccc")  # a Secret without its Pod

    assert [p.metadata.name for p in objects.list_runner_pods("first")] == ["first-bbbbb"]
    assert objects.runner_pod_names("first") == {"first-bbbbb"}
    assert objects.runner_secret_owners("first") == {"first-bbbbb": first.uid}
    assert objects.runner_secret_owners("second") == {"second-aaaaa": second.uid}


def test_secret_owners_come_from_a_metadata_only_listing(kube_api, namespace, monkeypatch):
    scale_set = create_scale_set(kube_api, namespace)
    objects = RunnerObjects(kube_api, namespace)
    make_runner(objects, scale_set, "runners-aaaaa")
    # A Secret with the scale set's label that it does not control.
    k8s.CoreV1Api(kube_api).create_namespaced_secret(
        namespace,
        k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(
                name="runners-bbbbb", labels={"provisioner.dev/scale-set": "runners"}
            ),
            string_data={"jitconfig": JIT},
        ),
    )
    answers: list[dict] = []
    list_secrets = objects.core.list_namespaced_secret

    def recording(*args, **kwargs):
        response = list_secrets(*args, **kwargs)
        answers.append(json.loads(response.data))
        return response

    monkeypatch.setattr(objects.core, "list_namespaced_secret", recording)

    assert objects.runner_secret_owners("runners") == {
        "runners-aaaaa": scale_set.uid,
        "runners-bbbbb": "",
    }
    (answer,) = answers
    assert answer["kind"] == "PartialObjectMetadataList"
    assert all("data" not in item for item in answer["items"])


def test_an_invalid_template_is_refused_by_the_api_server(kube_api, namespace):
    manifest = scale_set_manifest("bad", 1, 10)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "-1"}}
    obj = k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest
    )
    with pytest.raises(KubeInvalid) as raised:
        RunnerObjects(kube_api, namespace).create_pod(ScaleSet.from_object(obj), "bad-aaaaa")
    assert raised.value.status == 422
    assert "spec.containers[0].resources.requests" in str(raised.value)


def test_the_kubelet_stand_in_moves_pods_through_their_states(kube_api, namespace, kubelet):
    scale_set = create_scale_set(kube_api, namespace)
    objects = RunnerObjects(kube_api, namespace)
    for name in ("runners-aaaaa", "runners-bbbbb", "runners-ccccc", "runners-ddddd"):
        make_runner(objects, scale_set, name)

    def states() -> dict[str, str]:
        models = {p.metadata.name: runner_pod_state(p) for p in objects.list_runner_pods("runners")}
        # The reconciler reads the same listing as JSON, without client models: same states.
        observed = {p.name: p.state for p in objects.observe_runner_pods("runners")}
        assert observed == models
        return models

    assert set(states().values()) == {"pending"}
    kubelet.run("runners-aaaaa")
    kubelet.run("runners-bbbbb")
    kubelet.finish("runners-bbbbb")
    kubelet.fail_to_start("runners-ccccc", reason="ErrImagePull")
    assert states() == {
        "runners-aaaaa": "running",
        "runners-bbbbb": "finished",
        "runners-ccccc": "failed_to_start",
        "runners-ddddd": "pending",
    }
    (failed,) = [p for p in objects.observe_runner_pods("runners") if p.name == "runners-ccccc"]
    assert failed.start_failure == "container runner: ErrImagePull"
    assert kubelet.run_all("provisioner.dev/scale-set=runners") == [
        "runners-ccccc",
        "runners-ddddd",
    ]
    assert states()["runners-ddddd"] == "running"


def test_auto_run_starts_pods_as_they_appear(kube_api, namespace, kubelet):
    scale_set = create_scale_set(kube_api, namespace)
    objects = RunnerObjects(kube_api, namespace)
    make_runner(objects, scale_set, "runners-aaaaa")
    kubelet.auto_run()
    make_runner(objects, scale_set, "runners-bbbbb")

    def all_running() -> bool:
        pods = objects.list_runner_pods("runners")
        return len(pods) == 2 and all(runner_pod_state(p) == "running" for p in pods)

    wait_until(all_running, 15, "both pods to run")


def test_status_conditions_events_and_scale(kube_api, namespace):
    scale_set = create_scale_set(kube_api, namespace)
    store = ScaleSetStore(kube_api)
    assert store.get(namespace, "runners") == scale_set
    assert [s.key for s in store.list(namespace)] == [f"{namespace}/runners"]
    assert f"{namespace}/runners" in {s.key for s in store.list()}

    conditions = with_condition([], "Ready", "False", "Converging", "0/2 runners", T1)
    store.patch_status(namespace, "runners", {"inFlight": 2, "conditions": conditions})
    conditions = with_condition(conditions, "Ready", "False", "Converging", "1/2 runners", T2)
    status = store.patch_status(namespace, "runners", {"conditions": conditions})["status"]
    assert status["inFlight"] == 2  # merged, not replaced
    (ready,) = status["conditions"]
    assert (ready["message"], ready["lastTransitionTime"]) == ("1/2 runners", T1)

    store.emit_event(scale_set, "BatchCompleted", "created 2/2 runners")
    store.emit_event(scale_set, "BatchCompleted", "created 3/3 runners")
    events = k8s.CoreV1Api(kube_api).list_namespaced_event(namespace).items
    assert sorted(e.message for e in events) == ["created 2/2 runners", "created 3/3 runners"]
    assert {(e.involved_object.kind, e.involved_object.uid, e.reason) for e in events} == {
        ("RunnerScaleSet", scale_set.uid, "BatchCompleted")
    }

    store.scale(namespace, "runners", 7)
    assert store.get(namespace, "runners").replicas == 7


def test_read_credentials_names_the_secret_when_it_is_missing_or_incomplete(kube_api, namespace):
    scale_set = create_scale_set(kube_api, namespace)
    store = ScaleSetStore(kube_api)
    with pytest.raises(GitHubSecretError, match=r"runners-github.*does not exist"):
        store.read_credentials(scale_set)

    core = k8s.CoreV1Api(kube_api)
    secret = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="runners-github"), string_data={})
    core.create_namespaced_secret(namespace, secret)
    with pytest.raises(GitHubSecretError, match=r"runners-github.*github_token") as raised:
        store.read_credentials(scale_set)
    assert raised.value.key == "github_token"

    core.patch_namespaced_secret("runners-github", namespace, {"stringData": {"github_token": "t"}})
    assert store.read_credentials(scale_set) == PatCredentials("t")
