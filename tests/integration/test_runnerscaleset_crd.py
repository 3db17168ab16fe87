"""The RunnerScaleSet CRD on a real kube-apiserver: round trips and server-side validation."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from provisioner.kube.crd import GROUP, PLURAL, VERSION

VALID = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "RunnerScaleSet",
    "metadata": {"name": "ci"},
    "spec": {
        "githubConfigUrl": "https://github.com/acme/app",
        "githubConfigSecret": "github-credentials",
        "labels": ["self-hosted", "linux"],
        "minRunners": 0,
        "maxRunners": 50,
        "template": {"spec": {"containers": [{"name": "runner", "image": "runner:latest"}]}},
    },
}


def custom(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


def test_create_get_scale_and_patch_status(kube_api: client.ApiClient, namespace: str) -> None:
    api = custom(kube_api)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, copy.deepcopy(VALID))

    fetched = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "ci")
    assert fetched["spec"]["replicas"] == 0  # defaulted by the schema
    assert fetched["spec"]["runnerGroupId"] == 1

    api.patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, "ci", {"spec": {"replicas": 7}}
    )
    scale = api.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "ci")
    assert scale["spec"]["replicas"] == 7
    spec = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "ci")["spec"]
    assert spec["replicas"] == 7

    status = {
        "status": {
            "replicas": 3,
            "readyRunners": 2,
            "pendingRunners": 1,
            "selector": "provisioner.dev/scale-set=ci",
            "conditions": [
                {
                    "type": "ScalingUp",
                    "status": "True",
                    "reason": "Creating",
                    "message": "creating 4 runners",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    }
    api.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "ci", status)
    fetched = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "ci")
    assert fetched["status"]["readyRunners"] == 2
    assert fetched["status"]["conditions"][0]["type"] == "ScalingUp"
    scale = api.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "ci")
    assert scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == "provisioner.dev/scale-set=ci"


def _with(path: list[str], value: object) -> dict:
    body = copy.deepcopy(VALID)
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_with(["spec", "replicas"], -1), "spec.replicas"),
        (_with(["spec", "minRunners"], 60), "spec.minRunners"),
        (_with(["spec", "template", "spec", "containers"], []), "spec.template.spec.containers"),
        (
            _with(["spec", "template", "spec", "containers"], _DELETE),
            "spec.template.spec.containers",
        ),
        (_with(["spec", "githubConfigUrl"], "https://github.com/a/b/c"), "spec.githubConfigUrl"),
        (_with(["spec", "githubConfigUrl"], "ftp://github.com/acme"), "spec.githubConfigUrl"),
        (
            _with(["spec", "githubConfigUrl"], "https://github.com/../octo-repo"),
            "spec.githubConfigUrl",
        ),
        (_with(["spec", "githubConfigUrl"], "https://github.com/acme/.."), "spec.githubConfigUrl"),
        (
            _with(["spec", "githubConfigUrl"], "https://github.com/enterprises/"),
            "spec.githubConfigUrl",
        ),
        (_with(["spec", "githubApiUrl"], "ghe.example.net/api/v3"), "spec.githubApiUrl"),
        (_with(["spec", "githubConfigSecret"], _DELETE), "spec.githubConfigSecret"),
    ],
    ids=[
        "negative-replicas",
        "min-above-max",
        "no-containers",
        "containers-missing",
        "names-no-scope",
        "not-https",
        "dot-dot-segment-first",
        "dot-dot-segment-last",
        "bare-enterprises",
        "api-url-without-scheme",
        "no-secret",
    ],
)
def test_invalid_specs_are_rejected_naming_the_field(
    kube_api: client.ApiClient, namespace: str, body: dict, field: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        custom(kube_api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert rejected.value.status == 422
    assert field in rejected.value.body


def test_scale_below_zero_is_rejected(kube_api: client.ApiClient, namespace: str) -> None:
    api = custom(kube_api)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, copy.deepcopy(VALID))
    with pytest.raises(ApiException) as rejected:
        api.patch_namespaced_custom_object_scale(
            GROUP, VERSION, namespace, PLURAL, "ci", {"spec": {"replicas": -3}}
        )
    assert rejected.value.status == 422
