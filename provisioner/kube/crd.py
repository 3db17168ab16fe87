"""The RunnerScaleSet CustomResourceDefinition: where its manifest lives and how to install it."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

GROUP = "provisioner.dev"
VERSION = "v1alpha1"
PLURAL = "runnerscalesets"
KIND = "RunnerScaleSet"
CRD_FILE = "crd-runnerscaleset.yaml"


def crd_manifest_path() -> Path:
    """The packaged copy in an installed wheel, else k8s/ in a source checkout."""
    packaged = Path(__file__).resolve().parents[1] / "manifests" / CRD_FILE
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "k8s" / CRD_FILE


def load_crd() -> dict:
    manifest: dict = yaml.safe_load(crd_manifest_path().read_text())
    return manifest


def install_crd(api: client.ApiClient, timeout: float = 30.0) -> None:
    """Create or update the CRD and wait until the API server serves it."""
    extensions = client.ApiextensionsV1Api(api)
    manifest = load_crd()
    name = manifest["metadata"]["name"]
    try:
        extensions.create_custom_resource_definition(manifest)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = extensions.read_custom_resource_definition(name)
        manifest["metadata"]["resourceVersion"] = current.metadata.resource_version
        extensions.replace_custom_resource_definition(name, manifest)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = extensions.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in (crd.status.conditions or [])}
        if conditions.get("Established") == "True" and _served(api):
            return
        time.sleep(0.1)
    raise TimeoutError(f"CRD {name} was not established within {timeout:.0f}s")


def _served(api: client.ApiClient) -> bool:
    # Established can precede the discovery update; a list proves the endpoint answers.
    try:
        client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
