"""The NetworkPolicies of k8s/, applied to the real API server, decide who reaches what.

Every NetworkPolicy under k8s/ is created for real in fresh namespaces standing for the
install's, beside pods made from the Deployments' pod templates and runner pods the provisioner
builds from k8s/examples/runnerscaleset.yaml. The API server evaluates each policy's label
selectors (pods and namespaces are listed with them); this test combines the answers with the
NetworkPolicy rules (a pod selected by a policy of a direction admits only what a rule
allows), the way a CNI plugin enforces them."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.runner_objects import SCALE_SET_LABEL, build_pod
from provisioner.kube.scaleset import ScaleSet
from tests.deploy.manifests import (
    K8S_DIR,
    RUNNERS_NAMESPACE,
    SYSTEM_NAMESPACE,
    load_documents,
    manifest_files,
    remap,
    server_side_apply,
)

pytestmark = pytest.mark.integration

KEDA_NAMESPACE = "keda"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
SCRAPER_LABEL = "provisioner.dev/metrics-scraper"


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str


EXTERNAL = None  # a source or destination outside the cluster (GitHub, the internet)


def selector_string(selector: dict | None) -> str:
    """A LabelSelector in the API's query syntax, for the server to evaluate."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in (selector.get("match_labels") or {}).items()]
    for expression in selector.get("match_expressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression["values"]
        terms.append(
            {
                "In": f"{key} in ({','.join(values or [])})",
                "NotIn": f"{key} notin ({','.join(values or [])})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[operator]
        )
    return ",".join(terms)


class Cluster:
    """The applied policies, with pod and namespace selection answered by the API server."""

    def __init__(self, core: client.CoreV1Api, policies: list[dict], ports: dict[Pod, dict]):
        self.core = core
        self.policies = policies
        self.ports = ports  # named container ports of each pod

    def pods(self, namespace: str, selector: dict | None) -> set[Pod]:
        answer = self.core.list_namespaced_pod(namespace, label_selector=selector_string(selector))
        return {Pod(namespace, p.metadata.name) for p in answer.items}

    def namespaces(self, selector: dict | None) -> set[str]:
        answer = self.core.list_namespace(label_selector=selector_string(selector))
        return {n.metadata.name for n in answer.items}

    def selects(self, policy: dict, pod: Pod) -> bool:
        namespace = policy["metadata"]["namespace"]
        return pod.namespace == namespace and pod in self.pods(
            namespace, policy["spec"]["pod_selector"]
        )

    def _peer_matches(self, policy: dict, peer: dict, pod: Pod | None) -> bool:
        if peer.get("ip_block"):
            return pod is EXTERNAL
        if pod is EXTERNAL:
            return False
        if peer.get("namespace_selector") is not None:
            namespaces = self.namespaces(peer["namespace_selector"])
        else:
            namespaces = {policy["metadata"]["namespace"]}
        return pod.namespace in namespaces and pod in self.pods(
            pod.namespace, peer.get("pod_selector")
        )

    def _port_matches(self, rule: dict, target: Pod | None, port: int, protocol: str) -> bool:
        if not rule.get("ports"):
            return True
        for entry in rule["ports"]:
            wanted = entry.get("port")
            if isinstance(wanted, str):
                wanted = self.ports.get(target, {}).get(wanted)
            if (entry.get("protocol") or "TCP") == protocol and wanted in (None, port):
                return True
        return False

    def _admits(self, direction: str, subject: Pod, other: Pod | None, port_owner, port, proto):
        kind, rules_key, peers_key = {
            "in": ("Ingress", "ingress", "_from"),
            "out": ("Egress", "egress", "to"),
        }[direction]
        isolating = [
            p
            for p in self.policies
            if kind in p["spec"]["policy_types"] and self.selects(p, subject)
        ]
        if not isolating:
            return True
        return any(
            self._port_matches(rule, port_owner, port, proto)
            and (
                not rule.get(peers_key)
                or any(self._peer_matches(policy, peer, other) for peer in rule[peers_key])
            )
            for policy in isolating
            for rule in policy["spec"].get(rules_key) or []
        )

    def reaches(self, source: Pod | None, target: Pod | None, port: int, proto: str = "TCP"):
        egress = source is EXTERNAL or self._admits("out", source, target, target, port, proto)
        ingress = target is EXTERNAL or self._admits("in", target, source, target, port, proto)
        return egress and ingress


@dataclass(frozen=True)
class Install:
    cluster: Cluster
    pods: dict[str, Pod]


def _namespace_selectors(doc: dict) -> Iterator[dict]:
    spec = doc["spec"]
    for rule in spec.get("ingress", []):
        yield from (
            peer["namespaceSelector"]
            for peer in rule.get("from", [])
            if "namespaceSelector" in peer
        )
    for rule in spec.get("egress", []):
        yield from (
            peer["namespaceSelector"] for peer in rule.get("to", []) if "namespaceSelector" in peer
        )


def _pod_from_template(namespace: str, name: str, template: dict) -> client.V1Pod:
    containers = [
        client.V1Container(
            name=c["name"],
            image=c["image"],
            ports=[
                client.V1ContainerPort(**{"name": p["name"], "container_port": p["containerPort"]})
                for p in c.get("ports", [])
            ],
        )
        for c in template["spec"]["containers"]
    ]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=template["metadata"].get("labels")),
        spec=client.V1PodSpec(containers=containers),
    )


@pytest.fixture(scope="module")
def install(kube_api: client.ApiClient) -> Install:
    suffix = "-" + uuid.uuid4().hex[:8]
    mapping = {
        SYSTEM_NAMESPACE: f"sys{suffix}",
        RUNNERS_NAMESPACE: f"run{suffix}",
        KEDA_NAMESPACE: f"keda{suffix}",
    }
    monitoring, elsewhere = f"mon{suffix}", f"ingress{suffix}"
    core = client.CoreV1Api(kube_api)
    labels = {monitoring: {SCRAPER_LABEL: "true"}}
    for name in [*mapping.values(), monitoring, elsewhere]:
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels.get(name)))
        )
    dynamic = DynamicClient(kube_api)
    networking = client.NetworkingV1Api(kube_api)

    policies, ports, pods = [], {}, {}
    for path in manifest_files():
        for doc in load_documents(path):
            if doc["kind"] == "NetworkPolicy":
                mapped = remap(doc, mapping, suffix)
                for selector in _namespace_selectors(mapped):
                    name = selector.get("matchLabels", {}).get(NAMESPACE_NAME_LABEL)
                    if name is not None:
                        selector["matchLabels"][NAMESPACE_NAME_LABEL] = mapping[name]
                server_side_apply(dynamic, mapped, dry_run=False)
                stored = networking.read_namespaced_network_policy(
                    mapped["metadata"]["name"], mapped["metadata"]["namespace"]
                )
                policies.append(stored.to_dict())
            elif doc["kind"] == "Deployment":
                namespace = mapping[doc["metadata"]["namespace"]]
                role = doc["spec"]["template"]["metadata"]["labels"].get(
                    "app.kubernetes.io/component"
                )
                body = _pod_from_template(
                    namespace, doc["metadata"]["name"], doc["spec"]["template"]
                )
                core.create_namespaced_pod(namespace, body)
                pod = Pod(namespace, doc["metadata"]["name"])
                pods[role] = pod
                ports[pod] = {
                    p["name"]: p["containerPort"]
                    for c in doc["spec"]["template"]["spec"]["containers"]
                    for p in c.get("ports", [])
                }

    # Runner pods as the provisioner builds them: from the example scale set, stored by the
    # API server, and from a copy whose template wears the workers' labels, in their namespace.
    (example,) = load_documents(K8S_DIR / "examples" / "runnerscaleset.yaml")
    custom = client.CustomObjectsApi(kube_api)
    disguise = {
        "app.kubernetes.io/name": "runner-provisioner",
        "app.kubernetes.io/component": "worker",
    }
    for key, namespace, labels in (
        ("runner", mapping[RUNNERS_NAMESPACE], None),
        ("disguised runner", mapping[SYSTEM_NAMESPACE], disguise),
        ("runner in a scraping namespace", monitoring, None),
    ):
        scale_set = copy.deepcopy(example)
        scale_set["metadata"]["namespace"] = namespace
        if labels:
            scale_set["spec"]["template"]["metadata"] = {"labels": labels}
        stored = custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, scale_set
        )
        pod = build_pod(ScaleSet.from_object(stored), "example-runner1")
        core.create_namespaced_pod(namespace, pod)
        pods[key] = Pod(namespace, "example-runner1")

    for key, namespace, labels in (
        ("prometheus", monitoring, {"app.kubernetes.io/name": "prometheus"}),
        ("keda operator", mapping[KEDA_NAMESPACE], {"app.kubernetes.io/name": "keda-operator"}),
        ("ingress controller", elsewhere, {"app.kubernetes.io/name": "ingress-nginx"}),
    ):
        body = client.V1Pod(
            metadata=client.V1ObjectMeta(name="p", labels=labels),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
        )
        core.create_namespaced_pod(namespace, body)
        pods[key] = Pod(namespace, "p")
    return Install(Cluster(core, policies, ports), pods)


PROVISIONER = ["reconciler", "worker", "flower", "webhook"]
WITH_METRICS = ["reconciler", "worker", "webhook"]
UNTRUSTED = ["runner", "disguised runner", "runner in a scraping namespace"]


def test_the_runner_pods_carry_the_label_the_policies_key_on(install: Install) -> None:
    for key in UNTRUSTED:
        pod = install.pods[key]
        labels = install.cluster.core.read_namespaced_pod(pod.name, pod.namespace).metadata.labels
        assert SCALE_SET_LABEL in labels
    disguised = install.pods["disguised runner"]
    assert (
        install.cluster.core.read_namespaced_pod(
            disguised.name, disguised.namespace
        ).metadata.labels["app.kubernetes.io/component"]
        == "worker"
    )


def test_every_policy_selects_pods(install: Install) -> None:
    for policy in install.cluster.policies:
        namespace = policy["metadata"]["namespace"]
        assert install.cluster.pods(namespace, policy["spec"]["pod_selector"]), policy["metadata"][
            "name"
        ]


def test_only_the_provisioners_processes_and_keda_reach_redis(install: Install) -> None:
    reaches, pods = install.cluster.reaches, install.pods
    redis = pods["queue"]
    for role in [*PROVISIONER, "keda operator"]:
        assert reaches(pods[role], redis, 6379), role
    for key in [*UNTRUSTED, "prometheus", "ingress controller", "ghsim"]:
        assert not reaches(pods[key], redis, 6379), key
    assert not reaches(EXTERNAL, redis, 6379)


def test_metrics_and_health_ports_admit_only_prometheus(install: Install) -> None:
    reaches, pods = install.cluster.reaches, install.pods
    for role in WITH_METRICS:
        assert reaches(pods["prometheus"], pods[role], 9100), role
        for key in [*UNTRUSTED, "ingress controller", "keda operator"]:
            assert not reaches(pods[key], pods[role], 9100), (key, role)


def test_flower_admits_no_pod(install: Install) -> None:
    reaches, pods = install.cluster.reaches, install.pods
    for key in [*UNTRUSTED, "prometheus", "ingress controller", "worker"]:
        assert not reaches(pods[key], pods["flower"], 5555), key


def test_the_webhook_receiver_port_is_open_for_github(install: Install) -> None:
    reaches, pods = install.cluster.reaches, install.pods
    assert reaches(EXTERNAL, pods["webhook"], 8080)
    assert reaches(pods["ingress controller"], pods["webhook"], 8080)
    assert not reaches(pods["runner"], pods["webhook"], 9100)


def test_the_provisioner_reaches_dns_the_api_server_and_github(install: Install) -> None:
    reaches, pods = install.cluster.reaches, install.pods
    for role in WITH_METRICS:
        assert reaches(pods[role], EXTERNAL, 443), role
        assert reaches(pods[role], EXTERNAL, 6443), role
        assert reaches(pods[role], EXTERNAL, 53, "UDP"), role
        assert not reaches(pods[role], EXTERNAL, 25), role
    assert not reaches(pods["queue"], EXTERNAL, 443)


def test_the_example_simulator_is_open_to_the_workers_only(install: Install) -> None:
    reaches, pods = install.cluster.reaches, install.pods
    assert reaches(pods["worker"], pods["ghsim"], 8080)
    assert reaches(pods["reconciler"], pods["ghsim"], 8080)
    for key in UNTRUSTED:
        assert not reaches(pods[key], pods["ghsim"], 8080), key
