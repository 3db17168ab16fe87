"""RunnerScaleSets as the autoscaler sees them, and the scale subresource it writes."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from provisioner.github.models import GitHubScope, InvalidScope
from provisioner.kube.crd import GROUP, PLURAL, VERSION


@dataclass(frozen=True)
class ScaleTarget:
    namespace: str
    name: str
    labels: tuple[str, ...]
    min_runners: int
    max_runners: int | None
    replicas: int
    github_config_url: str
    github_config_secret: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> ScaleTarget:
        spec = obj.get("spec") or {}
        return cls(
            namespace=obj["metadata"]["namespace"],
            name=obj["metadata"]["name"],
            labels=tuple(spec.get("labels") or ()),
            min_runners=int(spec.get("minRunners") or 0),
            max_runners=None if spec.get("maxRunners") is None else int(spec["maxRunners"]),
            replicas=int(spec.get("replicas") or 0),
            github_config_url=str(spec.get("githubConfigUrl", "")),
            github_config_secret=str(spec.get("githubConfigSecret", "")),
        )

    def scope(self) -> GitHubScope | None:
        try:
            return GitHubScope.parse(self.github_config_url)
        except InvalidScope:
            return None

    def repository(self) -> str | None:
        """owner/repo when the scale set registers its runners in one repository."""
        scope = self.scope()
        if scope is None or scope.kind != "repository":
            return None
        return f"{scope.owner}/{scope.repo}".lower()

    def serves(self, repository: str) -> bool:
        """Whether jobs of ``repository`` (owner/repo) can run on this scale set's runners."""
        scope = self.scope()
        if scope is None:
            return False
        owner = repository.split("/", 1)[0]
        if scope.kind == "repository":
            return self.repository() == repository.lower()
        if scope.kind == "organization":
            return scope.owner.lower() == owner.lower()
        # An enterprise's runners can serve any of its organizations; the URL does not say
        # which, so every repository qualifies.
        return True


class ScaleTargets:
    """Lists RunnerScaleSets (cached for ``max_age_s``) and writes spec.replicas."""

    def __init__(
        self,
        api: k8s.ApiClient,
        namespace: str | None = None,
        max_age_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.namespace = namespace
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: list[ScaleTarget] = []
        self._listed_at: float | None = None

    def list(self, fresh: bool = False) -> list[ScaleTarget]:
        with self._lock:
            now = self._clock()
            stale = self._listed_at is None or now - self._listed_at >= self.max_age_s
            if fresh or stale:
                if self.namespace:
                    answer = self.custom.list_namespaced_custom_object(
                        GROUP, VERSION, self.namespace, PLURAL
                    )
                else:
                    answer = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
                self._cached = [ScaleTarget.from_object(item) for item in answer["items"]]
                self._listed_at = now
            return list(self._cached)

    def scale(self, target: ScaleTarget, replicas: int) -> None:
        self.custom.patch_namespaced_custom_object_scale(
            GROUP, VERSION, target.namespace, PLURAL, target.name, {"spec": {"replicas": replicas}}
        )

    def secret_data(self, target: ScaleTarget) -> dict[str, bytes]:
        """The decoded data of the Secret named by spec.githubConfigSecret."""
        secret = self.core.read_namespaced_secret(target.github_config_secret, target.namespace)
        return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
