"""The RBAC of k8s/base, created for real and exercised with ServiceAccount tokens from the
TokenRequest API: what the reconciler and the workers need is allowed, the rest is denied.

The install's namespaces are mapped onto fresh ones (and the cluster-scoped names suffixed),
so this runs beside any other test on the shared API server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from provisioner.kube.crd import GROUP, PLURAL, VERSION
from tests.deploy.manifests import (
    K8S_DIR,
    RUNNERS_NAMESPACE,
    SYSTEM_NAMESPACE,
    load_documents,
    remap,
    server_side_apply,
    service_account_token,
    token_client,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Install:
    system: str  # where the reconciler, workers and Flower run
    runners: str  # where the runners and their scale sets live
    other: str  # a namespace the install has no business in
    reconciler: client.ApiClient
    worker: client.ApiClient
    flower: client.ApiClient


def _pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "runner", "image": "busybox"}]},
    }


def _secret(name: str) -> client.V1Secret:
    return client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={"k": "v"})


def _scale_set(name: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RunnerScaleSet",
        "metadata": {"name": name},
        "spec": {
            "githubConfigUrl": "https://github.com/acme/app",
            "githubConfigSecret": "github-credentials",
            "template": {"spec": {"containers": [{"name": "runner", "image": "busybox"}]}},
        },
    }


@pytest.fixture(scope="module")
def install(kube_api: client.ApiClient) -> Iterator[Install]:
    suffix = "-" + uuid.uuid4().hex[:8]
    namespaces = {SYSTEM_NAMESPACE: f"sys{suffix}", RUNNERS_NAMESPACE: f"run{suffix}"}
    other = f"other{suffix}"
    core = client.CoreV1Api(kube_api)
    for name in [*namespaces.values(), other]:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    dynamic = DynamicClient(kube_api)
    created = []
    for file in ("rbac-reconciler.yaml", "rbac-worker.yaml"):
        for doc in load_documents(K8S_DIR / "base" / file):
            mapped = remap(doc, namespaces, suffix)
            server_side_apply(dynamic, mapped, dry_run=False)
            created.append(mapped)
    system = namespaces[SYSTEM_NAMESPACE]
    clients = {
        role: token_client(kube_api, service_account_token(kube_api, system, f"provisioner-{role}"))
        for role in ("reconciler", "worker", "flower")
    }
    try:
        yield Install(system, namespaces[RUNNERS_NAMESPACE], other, **clients)
    finally:
        for api in clients.values():
            api.close()
        # Namespaced objects go with their (never reused) namespaces; cluster-scoped ones not.
        rbac = client.RbacAuthorizationV1Api(kube_api)
        for doc in created:
            if doc["kind"] == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(doc["metadata"]["name"])
            elif doc["kind"] == "ClusterRole":
                rbac.delete_cluster_role(doc["metadata"]["name"])


def denied(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiException as exc:
        if exc.status == 403:
            return True
        raise
    return False


def test_the_worker_creates_and_rolls_back_a_runner_in_the_runners_namespace(
    install: Install, kube_api: client.ApiClient
) -> None:
    custom_admin = client.CustomObjectsApi(kube_api)
    custom_admin.create_namespaced_custom_object(
        GROUP, VERSION, install.runners, PLURAL, _scale_set("set-a")
    )
    core = client.CoreV1Api(install.worker)
    custom = client.CustomObjectsApi(install.worker)

    assert custom.get_namespaced_custom_object(GROUP, VERSION, install.runners, PLURAL, "set-a")
    core.create_namespaced_secret(install.runners, _secret("set-a-r1"))
    core.create_namespaced_pod(install.runners, _pod("set-a-r1"))
    assert core.read_namespaced_pod("set-a-r1", install.runners).metadata.name == "set-a-r1"
    core.create_namespaced_event(
        install.runners,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="set-a."),
            involved_object=client.V1ObjectReference(
                kind="RunnerScaleSet", name="set-a", namespace=install.runners
            ),
            reason="BatchFinished",
            message="created 1/1",
            type="Normal",
        ),
    )
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, install.runners, PLURAL, "set-a", {"status": {"inFlight": 0}}
    )
    core.delete_namespaced_pod("set-a-r1", install.runners)
    core.delete_namespaced_secret("set-a-r1", install.runners)


def test_the_worker_has_nothing_outside_the_runners_namespace(install: Install) -> None:
    core = client.CoreV1Api(install.worker)
    custom = client.CustomObjectsApi(install.worker)
    assert denied(lambda: core.delete_node("any-node"))
    assert denied(lambda: core.list_namespaced_secret(install.other))
    assert denied(lambda: core.read_namespaced_secret("flower-auth", install.system))
    assert denied(lambda: core.create_namespaced_pod(install.other, _pod("escape")))
    assert denied(lambda: core.list_pod_for_all_namespaces())
    assert denied(lambda: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL))
    # Changing a scale set's spec is the user's call, not the worker's.
    assert denied(
        lambda: custom.patch_namespaced_custom_object(
            GROUP, VERSION, install.runners, PLURAL, "set-a", {"spec": {"replicas": 5}}
        )
    )


def test_the_reconciler_watches_everywhere_and_leads_in_its_own_namespace(
    install: Install, kube_api: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(install.reconciler)
    core = client.CoreV1Api(install.reconciler)
    custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, watch=False)
    core.list_pod_for_all_namespaces(label_selector="provisioner.dev/scale-set")
    custom_admin = client.CustomObjectsApi(kube_api)
    custom_admin.create_namespaced_custom_object(
        GROUP, VERSION, install.runners, PLURAL, _scale_set("set-b")
    )
    custom.patch_namespaced_custom_object_scale(
        GROUP, VERSION, install.runners, PLURAL, "set-b", {"spec": {"replicas": 3}}
    )
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, install.runners, PLURAL, "set-b", {"status": {"replicas": 0}}
    )

    coordination = client.CoordinationV1Api(install.reconciler)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="runner-provisioner-reconciler"),
        spec=client.V1LeaseSpec(holder_identity="reconciler-0", lease_duration_seconds=15),
    )
    created = coordination.create_namespaced_lease(install.system, lease)
    created.spec.holder_identity = "reconciler-1"
    coordination.replace_namespaced_lease(created.metadata.name, install.system, created)

    # Garbage collection of a leftover runner Secret in the runners' namespace.
    client.CoreV1Api(kube_api).create_namespaced_secret(install.runners, _secret("leftover"))
    assert "leftover" in {
        s.metadata.name for s in core.list_namespaced_secret(install.runners).items
    }
    core.delete_namespaced_secret("leftover", install.runners)


def test_the_reconciler_cannot_grant_itself_more_or_read_elsewhere(install: Install) -> None:
    rbac = client.RbacAuthorizationV1Api(install.reconciler)
    core = client.CoreV1Api(install.reconciler)
    role = client.V1ClusterRole(
        metadata=client.V1ObjectMeta(name=f"escalate-{uuid.uuid4().hex[:6]}"),
        rules=[client.V1PolicyRule(api_groups=["*"], resources=["*"], verbs=["*"])],
    )
    assert denied(lambda: rbac.create_cluster_role(role))
    assert denied(lambda: core.delete_node("any-node"))
    assert denied(lambda: core.list_namespaced_secret(install.other))
    assert denied(lambda: core.read_namespaced_secret("flower-auth", install.system))
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="elsewhere"))
    assert denied(
        lambda: client.CoordinationV1Api(install.reconciler).create_namespaced_lease(
            install.runners, lease
        )
    )


def test_flower_has_no_api_access(install: Install) -> None:
    core = client.CoreV1Api(install.flower)
    assert denied(lambda: core.list_namespaced_pod(install.system))
    assert denied(lambda: core.list_namespaced_secret(install.runners))


def _token_kubeconfig(admin: client.ApiClient, token: str, path: Path) -> str:
    """A kubeconfig file that authenticates with ``token`` only, as a pod's would."""
    base = admin.configuration
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "test",
                        "cluster": {
                            "server": base.host,
                            "certificate-authority": base.ssl_ca_cert,
                        },
                    }
                ],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "test", "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    return str(path)


def test_reconciler_and_worker_with_their_own_tokens_complete_a_scale_up(
    install: Install, kube_api: client.ApiClient, pipeline, tmp_path: Path
) -> None:
    """The real processes, each authenticated as its ServiceAccount: the RBAC suffices."""
    tokens = {
        role: _token_kubeconfig(
            kube_api,
            service_account_token(kube_api, install.system, f"provisioner-{role}"),
            tmp_path / f"{role}.kubeconfig",
        )
        for role in ("reconciler", "worker")
    }
    pipeline.namespace = install.runners
    pipeline.start_workers(1, env={"PROVISIONER_KUBECONFIG": tokens["worker"]})
    reconciler = pipeline.start_reconciler(
        {"PROVISIONER_KUBECONFIG": tokens["reconciler"]}, lease_namespace=install.system
    )
    pipeline.apply_scale_set("rbac", replicas=5)

    pipeline.wait_for_runners(5, name="rbac")
    pipeline.scale("rbac", 2)
    pipeline.wait_for_runners(2, name="rbac")
    assert "Forbidden" not in reconciler.log_path.read_text()
