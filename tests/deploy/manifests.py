"""Reading the k8s/ manifests and applying them to the test API server, with the install's
namespaces mapped onto fresh ones so tests do not collide."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

K8S_DIR = Path(__file__).resolve().parents[2] / "k8s"
SYSTEM_NAMESPACE = "runner-provisioner"
RUNNERS_NAMESPACE = "runners"
CLUSTER_SCOPED_RBAC = {"ClusterRole", "ClusterRoleBinding"}


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest under k8s/ (kustomizations are build files, not objects)."""
    return sorted(p for p in K8S_DIR.rglob("*.yaml") if p.name != "kustomization.yaml")


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def base_documents() -> list[dict]:
    """The objects of the base install, in the kustomization's order."""
    return [
        doc
        for resource in kustomization(K8S_DIR)["resources"]
        for doc in load_documents(K8S_DIR / resource)
    ]


def remap(doc: dict, namespaces: dict[str, str], suffix: str) -> dict:
    """A copy of ``doc`` living in the mapped namespaces, cluster-scoped RBAC names suffixed."""
    doc = copy.deepcopy(doc)
    metadata = doc["metadata"]
    if doc["kind"] == "Namespace":
        metadata["name"] = namespaces.get(metadata["name"], metadata["name"])
    if "namespace" in metadata:
        metadata["namespace"] = namespaces.get(metadata["namespace"], metadata["namespace"])
    if doc["kind"] in CLUSTER_SCOPED_RBAC:
        metadata["name"] += suffix
    if doc.get("roleRef", {}).get("kind") == "ClusterRole":
        doc["roleRef"]["name"] += suffix
    for subject in doc.get("subjects", []):
        if "namespace" in subject:
            subject["namespace"] = namespaces.get(subject["namespace"], subject["namespace"])
    return doc


def resource_for(dynamic: DynamicClient, doc: dict):
    return dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])


def server_side_apply(dynamic: DynamicClient, doc: dict, dry_run: bool) -> dict:
    """Apply ``doc`` as `kubectl apply --server-side` would; with dry_run the server validates
    and defaults it (admission included) without storing it."""
    extra = {"dry_run": "All"} if dry_run else {}
    answer = resource_for(dynamic, doc).server_side_apply(
        body=doc,
        name=doc["metadata"]["name"],
        namespace=doc["metadata"].get("namespace"),
        field_manager="deploy-tests",
        force_conflicts=True,
        **extra,
    )
    return answer.to_dict()


def token_client(admin: client.ApiClient, token: str) -> client.ApiClient:
    """A client for the same API server that authenticates with ``token`` only."""
    base = admin.configuration
    configuration = client.Configuration()
    configuration.host = base.host
    configuration.ssl_ca_cert = base.ssl_ca_cert
    configuration.verify_ssl = base.verify_ssl
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def service_account_token(admin: client.ApiClient, namespace: str, name: str) -> str:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    answer = client.CoreV1Api(admin).create_namespaced_service_account_token(
        name, namespace, request
    )
    return answer.status.token
