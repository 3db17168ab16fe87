"""Read-modify-write of a RunnerScaleSet's status. The reconciler and the batch callback both
write it; a PUT carrying the resourceVersion makes the loser of a race re-read and re-apply
its change instead of overwriting the other's (a merge patch would replace the conditions
list whole)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.errors import KubeConflict

StatusChange = Callable[[dict], dict]


def update_status(
    api: k8s.ApiClient, namespace: str, name: str, change: StatusChange, attempts: int = 8
) -> dict | None:
    """Apply ``change`` (old status -> new status) and store it; None if the object is gone.
    Nothing is written when the status does not change."""
    custom = k8s.CustomObjectsApi(api)
    for _ in range(attempts):
        try:
            obj: dict = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        old = obj.get("status") or {}
        new = change(copy.deepcopy(old))
        if new == old:
            return obj
        obj["status"] = new
        try:
            replaced: dict = custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, obj
            )
            return replaced
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status != 409:
                raise
    raise KubeConflict(
        f"update status of {namespace}/{name}: changed by someone else on each of {attempts} tries",
        status=409,
    )
