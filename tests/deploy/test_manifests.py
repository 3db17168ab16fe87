"""Every manifest in k8s/ is accepted by a real kube-apiserver (server-side dry run), and the
pieces refer to each other correctly: kustomizations, autoscalers, monitoring, probes.

The test API server has no Prometheus Operator or KEDA, so the test installs minimal CRDs for
ServiceMonitor and ScaledObject that require the fields we rely on; what those operators would
check beyond that is asserted structurally below (targets, queue, selectors)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError, UnprocessibleEntityError
from prometheus_client.metrics import MetricWrapperBase

from provisioner import metrics
from provisioner.config import Settings
from provisioner.runtime.queue import shard_queues
from tests.deploy.manifests import (
    K8S_DIR,
    base_documents,
    kustomization,
    load_documents,
    manifest_files,
    server_side_apply,
)

pytestmark = pytest.mark.integration


def _minimal_crd(group: str, kind: str, plural: str, version: str, spec_schema: dict) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {"spec": spec_schema},
                        }
                    },
                }
            ],
        },
    }


def _open_object(**properties: dict) -> dict:
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "required": list(properties),
        "properties": properties,
    }


THIRD_PARTY_CRDS = [
    _minimal_crd(
        "monitoring.coreos.com",
        "ServiceMonitor",
        "servicemonitors",
        "v1",
        _open_object(
            selector={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            endpoints={
                "type": "array",
                "minItems": 1,
                "items": _open_object(port={"type": "string"}),
            },
        ),
    ),
    _minimal_crd(
        "keda.sh",
        "ScaledObject",
        "scaledobjects",
        "v1alpha1",
        _open_object(
            scaleTargetRef=_open_object(name={"type": "string"}),
            triggers={
                "type": "array",
                "minItems": 1,
                "items": _open_object(
                    type={"type": "string"},
                    metadata={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                ),
            },
        ),
    ),
    _minimal_crd(
        "keda.sh",
        "TriggerAuthentication",
        "triggerauthentications",
        "v1alpha1",
        _open_object(
            secretTargetRef={
                "type": "array",
                "minItems": 1,
                "items": _open_object(
                    parameter={"type": "string"}, name={"type": "string"}, key={"type": "string"}
                ),
            }
        ),
    ),
]


@pytest.fixture(scope="module")
def dynamic(kube_api: client.ApiClient) -> DynamicClient:
    extensions = client.ApiextensionsV1Api(kube_api)
    for crd in THIRD_PARTY_CRDS:
        try:
            extensions.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
    dyn = DynamicClient(kube_api)
    deadline = time.monotonic() + 30
    for crd in THIRD_PARTY_CRDS:
        version = crd["spec"]["versions"][0]["name"]
        api_version = f"{crd['spec']['group']}/{version}"
        while True:
            try:
                dyn.resources.get(api_version=api_version, kind=crd["spec"]["names"]["kind"])
                break
            except ResourceNotFoundError:
                if time.monotonic() > deadline:
                    raise
                dyn.resources.invalidate_cache()
                time.sleep(0.3)
    # Namespaced objects can only be dry-run into namespaces that exist.
    for doc in load_documents(K8S_DIR / "base" / "namespaces.yaml"):
        server_side_apply(dyn, doc, dry_run=False)
    return dyn


def _id(path: Path) -> str:
    return str(path.relative_to(K8S_DIR))


@pytest.mark.parametrize("path", manifest_files(), ids=_id)
def test_manifest_applies_with_server_side_dry_run(dynamic: DynamicClient, path: Path) -> None:
    documents = load_documents(path)
    assert documents, f"{_id(path)} holds no objects"
    for doc in documents:
        answer = server_side_apply(dynamic, doc, dry_run=True)
        assert answer["kind"] == doc["kind"]
        assert answer["metadata"]["name"] == doc["metadata"]["name"]


def test_dry_run_refuses_an_invalid_manifest(dynamic: DynamicClient) -> None:
    """The negative control: the dry run really validates, it does not just echo."""
    worker = next(
        d
        for d in base_documents()
        if d["metadata"]["name"] == "provisioner-worker" and d["kind"] == "Deployment"
    )
    worker["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    with pytest.raises(UnprocessibleEntityError):
        server_side_apply(dynamic, worker, dry_run=True)


def test_the_minimal_crds_refuse_a_scaled_object_without_triggers(dynamic: DynamicClient) -> None:
    scaled = load_documents(K8S_DIR / "autoscaling" / "keda" / "scaledobject.yaml")[0]
    del scaled["spec"]["triggers"]
    with pytest.raises(UnprocessibleEntityError):
        server_side_apply(dynamic, scaled, dry_run=True)


def test_kustomizations_list_existing_files_and_the_base_leaves_none_out() -> None:
    for path in K8S_DIR.rglob("kustomization.yaml"):
        spec = kustomization(path.parent)
        for resource in spec.get("resources", []):
            assert (path.parent / resource).is_file(), f"{path}: missing {resource}"
        for generator in spec.get("configMapGenerator", []):
            for file in generator.get("files", []):
                assert (path.parent / file).is_file(), f"{path}: missing {file}"
    listed = {K8S_DIR / r for r in kustomization(K8S_DIR)["resources"]}
    on_disk = set((K8S_DIR / "base").glob("*.yaml")) | {K8S_DIR / "crd-runnerscaleset.yaml"}
    assert on_disk == listed


def _base(kind: str, name: str) -> dict:
    return next(d for d in base_documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def test_autoscalers_scale_the_worker_deployment_on_the_celery_queue() -> None:
    worker = _base("Deployment", "provisioner-worker")
    redis_service = _base("Service", "redis")
    scaled = load_documents(K8S_DIR / "autoscaling" / "keda" / "scaledobject.yaml")[0]
    hpa = load_documents(K8S_DIR / "autoscaling" / "hpa" / "hpa.yaml")[0]
    for autoscaler in (scaled, hpa):
        target = autoscaler["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", worker["metadata"]["name"])
        assert autoscaler["metadata"]["namespace"] == worker["metadata"]["namespace"]
    triggers = scaled["spec"]["triggers"]
    # Every queue a worker takes creations from counts, and the backlog is their sum.
    assert sorted(t["metadata"]["listName"] for t in triggers) == sorted(shard_queues())
    formula = scaled["spec"]["advanced"]["scalingModifiers"]["formula"]
    assert sorted(formula.split(" + ")) == sorted(t["name"] for t in triggers)
    for trigger in triggers:
        assert trigger["type"] == "redis"
        host, port = trigger["metadata"]["address"].split(":")
        assert host.split(".")[:2] == [
            redis_service["metadata"]["name"],
            redis_service["metadata"]["namespace"],
        ]
        assert int(port) == redis_service["spec"]["ports"][0]["port"]


def test_the_service_monitor_selects_both_metrics_services() -> None:
    monitor = load_documents(K8S_DIR / "monitoring" / "servicemonitor.yaml")[0]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        d
        for d in base_documents()
        if d["kind"] == "Service" and wanted.items() <= d["metadata"].get("labels", {}).items()
    ]
    assert {d["metadata"]["name"] for d in selected} == {
        "provisioner-reconciler-metrics",
        "provisioner-worker-metrics",
    }
    for service in selected:
        assert (
            service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
        )
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
        assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


@pytest.mark.parametrize("name", ["provisioner-reconciler", "provisioner-worker"])
def test_probes_and_scrapes_use_the_configured_metrics_port(name: str) -> None:
    settings = _base("ConfigMap", "provisioner-settings")["data"]
    port = int(settings["PROVISIONER_METRICS_PORT"])
    assert port == Settings.model_fields["metrics_port"].default
    (container,) = _base("Deployment", name)["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    service = _base("Service", f"{name}-metrics")
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_the_reconciler_runs_two_leader_elected_replicas_in_its_own_namespace() -> None:
    deployment = _base("Deployment", "provisioner-reconciler")
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:3] == ["reconciler", "--lease-namespace", "$(POD_NAMESPACE)"]
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def _exported_sample_names() -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + s for s in suffixes[family.type])
    return names


def test_the_dashboard_queries_only_metrics_the_code_exports() -> None:
    dashboard = json.loads((K8S_DIR / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queried = {name for e in exprs for name in re.findall(r"provisioner_[a-z_]+", e)}
    assert queried, "the dashboard queries nothing"
    assert queried <= _exported_sample_names(), queried - _exported_sample_names()


def test_the_example_scale_set_refers_to_the_example_secret() -> None:
    (scale_set,) = load_documents(K8S_DIR / "examples" / "runnerscaleset.yaml")
    (secret,) = load_documents(K8S_DIR / "examples" / "github-secret.yaml")
    assert scale_set["metadata"]["name"] == "example"
    assert scale_set["spec"]["githubConfigSecret"] == secret["metadata"]["name"]
    assert scale_set["metadata"]["namespace"] == secret["metadata"]["namespace"]
    assert "github_token" in secret["stringData"]


# The Secrets the install refers to and the operator creates; docs/operations.md has the
# command for each.
OPERATOR_SECRETS = {
    "provisioner-redis": {"password"},
    "flower-auth": {"FLOWER_BASIC_AUTH"},
    "provisioner-webhook-secret": {"secret"},
}


def _secret_references(doc: dict) -> set[tuple[str, str | None]]:
    """(Secret, key) pairs a workload or KEDA object reads; key None for a whole Secret."""
    found: set[tuple[str, str | None]] = set()
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                found.add((ref["name"], ref["key"]))
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                found.add((source["secretRef"]["name"], None))
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            found.add((volume["secret"]["secretName"], None))
    for ref in doc.get("spec", {}).get("secretTargetRef", []):
        found.add((ref["name"], ref["key"]))
    return found


def test_no_credential_ships_and_every_secret_referred_to_is_documented() -> None:
    referred: set[tuple[str, str | None]] = set()
    for path in manifest_files():
        for doc in load_documents(path):
            if doc["kind"] == "Secret":
                # Only the example's GitHub token placeholder, which no server accepts.
                assert _id(path) == "examples/github-secret.yaml", f"{_id(path)} ships a Secret"
            referred |= _secret_references(doc)
    assert {name for name, _ in referred} == set(OPERATOR_SECRETS)
    for name, key in referred:
        assert key is None or key in OPERATOR_SECRETS[name], (name, key)
    operations = (K8S_DIR.parent / "docs" / "operations.md").read_text()
    for name, keys in OPERATOR_SECRETS.items():
        command = re.search(
            rf"create secret generic {name}\s+(?:\\\s+)?--from-literal=(\w+)=", operations
        )
        assert command, f"docs/operations.md has no command creating {name}"
        assert command.group(1) in keys


def test_redis_requires_the_password_every_redis_client_is_given() -> None:
    (redis,) = _base("Deployment", "redis")["spec"]["template"]["spec"]["containers"]
    secret_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in redis["env"] if "valueFrom" in e
    }
    assert secret_env == {"REDISCLI_AUTH": "provisioner-redis"}
    assert redis["args"][redis["args"].index("--requirepass") + 1] == "$(REDISCLI_AUTH)"
    assert redis["livenessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    webhook = load_documents(K8S_DIR / "autoscaling" / "webhook" / "webhook.yaml")
    clients = [
        doc
        for doc in [*base_documents(), *webhook]
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] != "redis"
    ]
    assert len(clients) == 4
    for doc in clients:
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs["PROVISIONER_REDIS_PASSWORD"] == {
            "name": "provisioner-redis",
            "key": "password",
        }
    scaled = load_documents(K8S_DIR / "autoscaling" / "keda" / "scaledobject.yaml")[0]
    auth = load_documents(K8S_DIR / "autoscaling" / "keda" / "redis-access.yaml")[0]
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "provisioner-redis", "key": "password"}
    ]


def test_every_image_of_the_base_is_pinned_to_a_tag() -> None:
    pinned = {i["name"] for i in kustomization(K8S_DIR)["images"] if i.get("newTag")}
    for doc in base_documents():
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            image = container["image"]
            tagged = ":" in image and not image.endswith(":latest")
            assert image in pinned or tagged, f"{doc['metadata']['name']}: {image} is not pinned"
