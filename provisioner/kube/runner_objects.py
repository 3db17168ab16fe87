"""A runner's Kubernetes objects: the Secret holding its JIT config and the Pod that runs it,
both labelled with the scale set and owned by the RunnerScaleSet."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from provisioner.kube.errors import KubeConflict, KubeNotFound, kube_errors
from provisioner.kube.scaleset import ScaleSet, owner_reference

SCALE_SET_LABEL = "provisioner.dev/scale-set"
RUNNER_LABEL = "provisioner.dev/runner"
JIT_CONFIG_KEY = "jitconfig"
JIT_CONFIG_ENV = "ACTIONS_RUNNER_INPUT_JITCONFIG"
RUNNER_CONTAINER = "runner"
# Waiting reasons after which the container will not start without a change to the template.
START_FAILURE_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
POD_CACHE_SIZE = 256
# Asks a list for the objects' metadata alone (PartialObjectMetadataList), JSON if refused.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"

PodState = Literal["pending", "running", "finished", "failed_to_start"]


def runner_labels(scale_set_name: str, name: str) -> dict[str, str]:
    return {SCALE_SET_LABEL: scale_set_name, RUNNER_LABEL: name}


def build_secret(scale_set: ScaleSet, name: str, encoded_jit_config: str) -> k8s.V1Secret:
    """The Secret ``name`` holding the runner's encoded JIT config under ``jitconfig``."""
    return k8s.V1Secret(
        api_version="v1",
        kind="Secret",
        metadata=k8s.V1ObjectMeta(
            name=name,
            namespace=scale_set.namespace,
            labels=runner_labels(scale_set.name, name),
            owner_references=[k8s.V1OwnerReference(**_snake(owner_reference(scale_set)))],
        ),
        type="Opaque",
        string_data={JIT_CONFIG_KEY: encoded_jit_config},
    )


def _snake(reference: dict[str, Any]) -> dict[str, Any]:
    return {
        "api_version": reference["apiVersion"],
        "kind": reference["kind"],
        "name": reference["name"],
        "uid": reference["uid"],
        "controller": reference["controller"],
        "block_owner_deletion": reference["blockOwnerDeletion"],
    }


class _RenderedTemplate:
    """The parts of a runner Pod that do not depend on the runner's name, rendered once per
    scale set generation."""

    def __init__(self, scale_set: ScaleSet) -> None:
        template = copy.deepcopy(scale_set.template)
        metadata = {
            key: value
            for key, value in (template.get("metadata") or {}).items()
            if key not in ("name", "generateName", "namespace", "labels", "ownerReferences")
        }
        metadata["namespace"] = scale_set.namespace
        metadata["ownerReferences"] = [owner_reference(scale_set)]
        self.metadata = metadata
        self.labels = {
            **((template.get("metadata") or {}).get("labels") or {}),
            SCALE_SET_LABEL: scale_set.name,
        }
        spec = template["spec"]
        # An ephemeral runner runs one job; a restarted container would have no registration.
        spec["restartPolicy"] = "Never"
        self.spec = spec
        containers = spec["containers"]
        names = [c["name"] for c in containers]
        self.runner_index = names.index(RUNNER_CONTAINER) if RUNNER_CONTAINER in names else 0
        runner = containers[self.runner_index]
        self.runner_env = [e for e in runner.get("env") or [] if e.get("name") != JIT_CONFIG_ENV]

    def pod(self, name: str) -> dict[str, Any]:
        # Only what differs per runner is new; the rest is shared with the cache.
        containers = list(self.spec["containers"])
        runner = containers[self.runner_index]
        jit_env = {
            "name": JIT_CONFIG_ENV,
            "valueFrom": {"secretKeyRef": {"name": name, "key": JIT_CONFIG_KEY}},
        }
        containers[self.runner_index] = {**runner, "env": [*self.runner_env, jit_env]}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **self.metadata,
                "name": name,
                "labels": {**self.labels, RUNNER_LABEL: name},
            },
            "spec": {**self.spec, "containers": containers},
        }


_rendered: dict[tuple[str, str, str, int], _RenderedTemplate] = {}
_rendered_lock = threading.Lock()


def _rendered_template(scale_set: ScaleSet) -> _RenderedTemplate:
    # A generation's spec never changes, so (object, generation) identifies the template.
    key = (scale_set.namespace, scale_set.name, scale_set.uid, scale_set.generation)
    rendered = _rendered.get(key)
    if rendered is None:
        rendered = _RenderedTemplate(scale_set)
        with _rendered_lock:
            _rendered[key] = rendered
            while len(_rendered) > POD_CACHE_SIZE:
                del _rendered[next(iter(_rendered))]
    return rendered


def build_pod(scale_set: ScaleSet, name: str) -> dict[str, Any]:
    """The runner Pod ``name`` from the scale set's template. Treat it as read-only: parts
    that do not depend on the name are shared between the pods of one generation."""
    return _rendered_template(scale_set).pod(name)


class RunnerObjects:
    """Runner Secrets and Pods in one namespace. Failures are the typed errors of
    provisioner.kube.errors; AlreadyExists on create and NotFound on delete are answers."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str) -> None:
        self.core = k8s.CoreV1Api(api_client)
        self.namespace = namespace

    def create_secret(self, scale_set: ScaleSet, name: str, encoded_jit_config: str) -> bool:
        """False when a Secret of that name already existed."""
        with kube_errors(f"create Secret {self.namespace}/{name}"):
            return _created(
                lambda: self.core.create_namespaced_secret(
                    self.namespace,
                    build_secret(scale_set, name, encoded_jit_config),
                    _preload_content=False,
                )
            )

    def create_pod(self, scale_set: ScaleSet, name: str) -> bool:
        """False when a Pod of that name already existed."""
        with kube_errors(f"create Pod {self.namespace}/{name}"):
            return _created(
                lambda: self.core.create_namespaced_pod(
                    self.namespace, build_pod(scale_set, name), _preload_content=False
                )
            )

    def secret_owner(self, name: str) -> str | None:
        """The uid of the Secret's controlling owner ("" when it has none); None when there
        is no such Secret."""
        try:
            with kube_errors(f"read Secret {self.namespace}/{name}"):
                return _controller_uid(self.core.read_namespaced_secret(name, self.namespace))
        except KubeNotFound:
            return None

    def pod_owner(self, name: str) -> str | None:
        """As secret_owner, for the Pod."""
        try:
            with kube_errors(f"read Pod {self.namespace}/{name}"):
                return _controller_uid(self.core.read_namespaced_pod(name, self.namespace))
        except KubeNotFound:
            return None

    def delete_runner_objects(self, name: str, owner_uid: str | None = None) -> None:
        """Pod first, so no container is left reading a deleted Secret; missing ones are fine.
        With ``owner_uid``, an object another owner controls is left alone."""
        self._delete(
            "Pod", name, owner_uid, self.core.read_namespaced_pod, self.core.delete_namespaced_pod
        )
        self._delete(
            "Secret",
            name,
            owner_uid,
            self.core.read_namespaced_secret,
            self.core.delete_namespaced_secret,
        )

    def list_runner_pods(self, scale_set_name: str) -> list[k8s.V1Pod]:
        selector = f"{SCALE_SET_LABEL}={scale_set_name}"
        with kube_errors(f"list runner Pods of {self.namespace}/{scale_set_name}"):
            pods: list[k8s.V1Pod] = self.core.list_namespaced_pod(
                self.namespace, label_selector=selector
            ).items
            return pods

    def observe_runner_pods(self, scale_set_name: str) -> list[RunnerPod]:
        """The scale set's runner pods as the reconciler sees them, parsed from the listing's
        JSON without client models."""
        selector = f"{SCALE_SET_LABEL}={scale_set_name}"
        with kube_errors(f"list runner Pods of {self.namespace}/{scale_set_name}"):
            response = self.core.list_namespaced_pod(
                self.namespace, label_selector=selector, _preload_content=False
            )
            listing = json.loads(response.data)
        return [RunnerPod.from_dict(pod) for pod in listing.get("items") or []]

    def runner_pod_names(self, scale_set_name: str) -> set[str]:
        """The names of the scale set's runner pods, whatever their state."""
        listing = self._metadata("Pods", self.core.list_namespaced_pod, scale_set_name)
        return {str(meta.get("name") or "") for meta in listing}

    def runner_secret_owners(self, scale_set_name: str) -> dict[str, str]:
        """The scale set's runner Secrets: name -> uid of the controlling owner ("" when
        there is none). Their data (the runners' JIT configs) is never fetched."""
        listing = self._metadata("Secrets", self.core.list_namespaced_secret, scale_set_name)
        return {str(meta.get("name") or ""): _owner_uid(meta) for meta in listing}

    def _metadata(
        self, kind: str, list_objects: Callable[..., Any], scale_set_name: str
    ) -> list[dict[str, Any]]:
        """The metadata of the scale set's runner objects of ``kind``: a metadata-only listing
        read as JSON, so thousands of objects cost neither client models nor their contents."""
        selector = f"{SCALE_SET_LABEL}={scale_set_name}"
        with kube_errors(f"list runner {kind} of {self.namespace}/{scale_set_name}"):
            response = list_objects(
                self.namespace,
                label_selector=selector,
                _headers={"Accept": METADATA_ONLY},
                _preload_content=False,
            )
            listing = json.loads(response.data)
        return [item.get("metadata") or {} for item in listing.get("items") or []]

    def _delete(
        self,
        kind: str,
        name: str,
        owner_uid: str | None,
        read: Callable[..., Any],
        delete: Callable[..., Any],
    ) -> None:
        operation = f"delete {kind} {self.namespace}/{name}"
        try:
            with kube_errors(operation):
                if owner_uid is None:
                    delete(name, self.namespace)
                    return
                current = read(name, self.namespace)
                if _controller_uid(current) != owner_uid:
                    return
                # The precondition makes sure it is the object just read that goes.
                delete(
                    name,
                    self.namespace,
                    body=k8s.V1DeleteOptions(
                        preconditions=k8s.V1Preconditions(uid=current.metadata.uid)
                    ),
                )
        except (KubeNotFound, KubeConflict):
            pass  # gone already, or replaced by another object since it was read


def _controller_uid(obj: Any) -> str:
    for reference in obj.metadata.owner_references or []:
        if reference.controller:
            return str(reference.uid)
    return ""


def _owner_uid(metadata: dict[str, Any]) -> str:
    """As _controller_uid, for an object's metadata as JSON."""
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller"):
            return str(reference.get("uid") or "")
    return ""


def _created(create: Callable[[], Any]) -> bool:
    # The created object comes back unparsed (_preload_content=False) and is dropped: turning
    # it into a model costs more CPU than the rest of the call. Read to the end, so the
    # connection goes back to the pool ready for the next request.
    try:
        response = create()
        response.drain_conn()
        response.release_conn()
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


@dataclass(frozen=True)
class RunnerPod:
    """What the reconciler needs of a runner pod, read from the pod's JSON: a listing of
    thousands of pods is not turned into client models (that cost more CPU than the rest of
    a reconcile pass)."""

    name: str
    uid: str
    created: str
    deleting: bool
    state: PodState
    # Why it did not start, for the failure budget; "" unless ``state`` is failed_to_start.
    start_failure: str

    @classmethod
    def from_dict(cls, pod: dict[str, Any]) -> RunnerPod:
        meta = pod.get("metadata") or {}
        state = _state(pod)
        return cls(
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            created=str(meta.get("creationTimestamp") or ""),
            deleting=bool(meta.get("deletionTimestamp")),
            state=state,
            start_failure=_start_failure(pod) if state == "failed_to_start" else "",
        )


def runner_pod_state(pod: k8s.V1Pod) -> PodState:
    return _state(pod.to_dict(serialize=True))


def _state(pod: dict[str, Any]) -> PodState:
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        return "finished"
    statuses = status.get("containerStatuses") or []
    for container in [*(status.get("initContainerStatuses") or []), *statuses]:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") in START_FAILURE_REASONS:
            return "failed_to_start"
    runner = _runner_status(pod, statuses)
    terminated = (runner.get("state") or {}).get("terminated") if runner else None
    if terminated:
        # With sidecars the pod keeps running after the runner exits. A runner that exits
        # before the pod was ever ready never took a job.
        return "finished" if _was_ready_before(status, terminated) else "failed_to_start"
    return "running" if phase == "Running" else "pending"


def _runner_status(pod: dict[str, Any], statuses: list[dict[str, Any]]) -> dict[str, Any] | None:
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    runner_name = RUNNER_CONTAINER if RUNNER_CONTAINER in names else (names or [None])[0]
    for container in statuses:
        if container.get("name") == runner_name:
            return container
    return None


def _was_ready_before(status: dict[str, Any], terminated: dict[str, Any]) -> bool:
    """Whether the pod's Ready condition last changed after the runner container started:
    that change is the runner's own exit taking readiness away, so it had been ready."""
    for condition in status.get("conditions") or []:
        if condition.get("type") != "Ready":
            continue
        if condition.get("status") == "True":
            return True
        changed, started = condition.get("lastTransitionTime"), terminated.get("startedAt")
        return changed is not None and started is not None and changed > started
    return False


def _start_failure(pod: dict[str, Any]) -> str:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        name, state = container.get("name"), container.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            return f"container {name}: {state['waiting']['reason']}"
        if state.get("terminated"):
            return f"container {name} exited with {state['terminated'].get('exitCode')}"
    return f"pod {(pod.get('metadata') or {}).get('name')} failed to start"
