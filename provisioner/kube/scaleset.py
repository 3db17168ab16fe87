"""RunnerScaleSet access: the spec parsed and checked beyond what the CRD schema can check,
status and condition updates, Events, the scale subresource and the GitHub credentials."""

from __future__ import annotations

import base64
import copy
import datetime
import logging
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from provisioner.github.models import GitHubScope, InvalidScope
from provisioner.kube.crd import GROUP, KIND, PLURAL, VERSION
from provisioner.naming import NAME_SUFFIX_LENGTH

if TYPE_CHECKING:
    from provisioner.github.auth import Credentials

log = logging.getLogger(__name__)

# Runner names are "<prefix>-<5 characters>" and serve as Pod names and label values, which
# Kubernetes limits to 63 characters.
MAX_LABEL_VALUE = 63
RUNNER_NAME_SUFFIX = NAME_SUFFIX_LENGTH + 1  # "-" and the suffix
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EVENT_COMPONENT = "runner-provisioner"


class ScaleSetSpecError(ValueError):
    """A RunnerScaleSet spec the provisioner cannot act on; ``field`` is the path at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class GitHubSecretError(ValueError):
    """The scale set's githubConfigSecret is missing or holds no usable credentials."""

    def __init__(self, message: str, secret: str, key: str | None) -> None:
        super().__init__(message)
        self.secret = secret
        self.key = key


@dataclass(frozen=True)
class ScaleSet:
    namespace: str
    name: str
    uid: str
    generation: int
    github_config_url: str
    github_config_secret: str
    runner_group_id: int
    labels: tuple[str, ...]
    min_runners: int
    max_runners: int | None
    replicas: int
    template: dict[str, Any]
    runner_name_prefix: str
    # Set once the resource is being deleted: its runners are removed, none are created.
    deleting: bool = False
    # spec.githubApiUrl: the REST API of a GitHub Enterprise Server, when not HOST/api/v3.
    github_api_url: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_object(cls, obj: dict) -> ScaleSet:
        """The scale set a RunnerScaleSet custom object describes; ScaleSetSpecError names the
        first field the provisioner cannot act on."""
        meta = obj.get("metadata") or {}
        name = meta.get("name") or ""
        if len(name) > MAX_LABEL_VALUE:
            raise ScaleSetSpecError(
                "metadata.name",
                f"is {len(name)} characters; runner labels carry it, so use at most "
                f"{MAX_LABEL_VALUE}",
            )
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise ScaleSetSpecError("spec", "is missing; see k8s/examples/runnerscaleset.yaml")

        url = _string(spec, "githubConfigUrl")
        try:
            GitHubScope.parse(url)
        except InvalidScope as exc:
            raise ScaleSetSpecError("spec.githubConfigUrl", str(exc)) from None

        min_runners = _integer(spec, "minRunners", 0, minimum=0)
        max_runners = spec.get("maxRunners")
        if max_runners is not None:
            max_runners = _integer(spec, "maxRunners", 0, minimum=min_runners)
        labels = spec.get("labels") or []
        if not isinstance(labels, list) or not all(
            isinstance(label, str) and label.strip() for label in labels
        ):
            raise ScaleSetSpecError("spec.labels", "must be a list of non-empty strings")

        prefix_field = "spec.runnerNamePrefix" if spec.get("runnerNamePrefix") else "metadata.name"
        prefix = spec.get("runnerNamePrefix") or name
        if not DNS_LABEL.match(prefix) or len(prefix) + RUNNER_NAME_SUFFIX > MAX_LABEL_VALUE:
            raise ScaleSetSpecError(
                prefix_field,
                f"{prefix!r} cannot start runner names: use lowercase letters, digits and '-', "
                f"at most {MAX_LABEL_VALUE - RUNNER_NAME_SUFFIX} characters "
                "(set spec.runnerNamePrefix to a shorter one)",
            )

        return cls(
            namespace=meta.get("namespace") or "",
            name=name,
            uid=meta.get("uid") or "",
            generation=int(meta.get("generation") or 0),
            github_config_url=url,
            github_config_secret=_string(spec, "githubConfigSecret"),
            runner_group_id=_integer(spec, "runnerGroupId", 1, minimum=1),
            # GitHub requires at least one label; the scale set's name is the natural one.
            labels=tuple(labels) or (name,),
            min_runners=min_runners,
            max_runners=max_runners,
            replicas=_integer(spec, "replicas", 0, minimum=0),
            template=_checked_template(spec.get("template")),
            runner_name_prefix=prefix,
            deleting=bool(meta.get("deletionTimestamp")),
            github_api_url=_api_url(spec),
        )


def _api_url(spec: dict) -> str | None:
    value = spec.get("githubApiUrl")
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ScaleSetSpecError(
            "spec.githubApiUrl",
            f"must be an http(s) URL such as https://HOST/api/v3, got {value!r}",
        )
    return cast(str, value)


def _string(spec: dict, key: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ScaleSetSpecError(f"spec.{key}", "is required and must be a non-empty string")
    return value


def _integer(spec: dict, key: str, default: int, minimum: int) -> int:
    value = spec.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScaleSetSpecError(f"spec.{key}", f"must be an integer, got {value!r}")
    if value < minimum:
        raise ScaleSetSpecError(f"spec.{key}", f"must be at least {minimum}, got {value}")
    return value


def _checked_template(template: object) -> dict[str, Any]:
    if not isinstance(template, dict):
        raise ScaleSetSpecError("spec.template", "is required: a pod template with spec")
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ScaleSetSpecError(
            "spec.template.metadata.labels", "must map label names to string values"
        )
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        raise ScaleSetSpecError("spec.template.spec", "is required: the runner pod's spec")
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ScaleSetSpecError(
            "spec.template.spec.containers",
            "must list at least one container (the runner, named 'runner' or listed first)",
        )
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not container.get("name"):
            raise ScaleSetSpecError(f"spec.template.spec.containers[{index}].name", "is required")
        if not container.get("image"):
            raise ScaleSetSpecError(f"spec.template.spec.containers[{index}].image", "is required")
    names = [c["name"] for c in containers]
    if len(set(names)) != len(names):
        raise ScaleSetSpecError(
            "spec.template.spec.containers", f"container names must be unique, got {names}"
        )
    # Our own copy: the caller's dict may change, a scale set must not.
    return copy.deepcopy(template)


def with_condition(
    conditions: list[dict],
    type: str,
    status: str,
    reason: str,
    message: str,
    now: str,
) -> list[dict]:
    """``conditions`` with the ``type`` condition set; lastTransitionTime only moves when the
    status changes. The input list is left untouched."""
    result: list[dict] = []
    found = False
    for condition in conditions:
        if condition.get("type") != type:
            result.append(condition)
            continue
        found = True
        changed = condition.get("status") != status
        transition = now if changed else condition.get("lastTransitionTime") or now
        result.append(
            {
                **condition,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": transition,
            }
        )
    if not found:
        result.append(
            {
                "type": type,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }
        )
    return result


def owner_reference(scale_set: ScaleSet) -> dict[str, Any]:
    """Makes the RunnerScaleSet the controller of a runner's objects, so they go with it."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": scale_set.name,
        "uid": scale_set.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


class ScaleSetStore:
    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)

    def get(self, namespace: str, name: str) -> ScaleSet:
        """ApiException 404 when it does not exist; ScaleSetSpecError when it is invalid."""
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return ScaleSet.from_object(obj)

    def list(self, namespace: str | None = None) -> list[ScaleSet]:
        """The valid scale sets of one namespace, or of all; invalid ones are left out (the
        reconciler reports them on their own status)."""
        if namespace:
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        else:
            items = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        scale_sets = []
        for obj in items.get("items", []):
            try:
                scale_sets.append(ScaleSet.from_object(obj))
            except ScaleSetSpecError as exc:
                meta = obj.get("metadata", {})
                log.debug("skipping %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)
        return scale_sets

    def patch_status(self, namespace: str, name: str, status: dict) -> dict:
        """Merge ``status`` into the status subresource (lists, such as conditions, are
        replaced whole)."""
        return cast(
            dict,
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            ),
        )

    def emit_event(
        self, scale_set: ScaleSet, reason: str, message: str, type: str = "Normal"
    ) -> None:
        """A core v1 Event on the RunnerScaleSet, as `kubectl describe` shows them."""
        now = datetime.datetime.now(datetime.UTC)
        event = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(
                name=f"{scale_set.name}.{uuid.uuid4().hex[:16]}", namespace=scale_set.namespace
            ),
            involved_object=k8s.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                name=scale_set.name,
                namespace=scale_set.namespace,
                uid=scale_set.uid,
            ),
            reason=reason,
            message=message,
            type=type,
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=k8s.V1EventSource(component=EVENT_COMPONENT),
            reporting_component=EVENT_COMPONENT,
        )
        self.core.create_namespaced_event(scale_set.namespace, event)

    def scale(self, namespace: str, name: str, replicas: int) -> dict:
        """Set spec.replicas through the scale subresource, as `kubectl scale` does."""
        if replicas < 0:
            raise ValueError(f"replicas must be 0 or more, got {replicas}")
        return cast(
            dict,
            self.custom.patch_namespaced_custom_object_scale(
                GROUP, VERSION, namespace, PLURAL, name, {"spec": {"replicas": replicas}}
            ),
        )

    def read_credentials(self, scale_set: ScaleSet) -> Credentials:
        """The GitHub credentials in the scale set's githubConfigSecret."""
        from provisioner.github.auth import InvalidCredentials, credentials_from_secret_data

        secret_name = scale_set.github_config_secret
        where = f"Secret {scale_set.namespace}/{secret_name} (spec.githubConfigSecret)"
        try:
            secret = self.core.read_namespaced_secret(secret_name, scale_set.namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise GitHubSecretError(
                    f"{where} does not exist; create it with github_token, or github_app_id, "
                    "github_app_installation_id and github_app_private_key",
                    secret_name,
                    None,
                ) from None
            raise
        data = {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
        try:
            return credentials_from_secret_data(data)
        except InvalidCredentials as exc:
            message = f"{where}, key {exc.key}: {exc}"
            raise GitHubSecretError(message, secret_name, exc.key) from None
