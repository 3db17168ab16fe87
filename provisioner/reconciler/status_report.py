"""What a reconcile pass writes on a RunnerScaleSet's status: the counts it observed and the
conditions they imply. The change is a pure function of the observation; the write is
kube.status's optimistic read-modify-write (no write when nothing changed)."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from kubernetes import client as k8s

from provisioner import metrics
from provisioner.kube.runner_objects import SCALE_SET_LABEL
from provisioner.kube.scaleset import ScaleSet, ScaleSetSpecError, with_condition
from provisioner.kube.status import StatusChange, update_status

log = logging.getLogger(__name__)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ObservedStatus:
    desired: int
    live: int
    ready: int
    pending: int
    in_flight: int
    draining: int
    failing_to_start: str  # the start-failure budget's description, "" within the budget
    failing_creations: str  # the same for creations
    throttled: tuple[str, str] | None = None  # (reason, message) while GitHub's limits hold
    # creations back, None when they do not


def observed_status_change(scale_set: ScaleSet, seen: ObservedStatus, now: str) -> StatusChange:
    def change(status: dict) -> dict:
        status.update(
            replicas=seen.live,
            readyRunners=seen.ready,
            pendingRunners=seen.pending,
            inFlight=seen.in_flight,
            drainingRunners=seen.draining,
            selector=f"{SCALE_SET_LABEL}={scale_set.name}",
            observedGeneration=scale_set.generation,
        )
        conditions = status.get("conditions") or []
        if seen.in_flight:
            conditions = with_condition(
                conditions,
                "ScalingUp",
                "True",
                "CreatingRunners",
                f"creating {seen.in_flight} runners",
                now,
            )
        elif any(c.get("type") == "ScalingUp" and c.get("status") == "True" for c in conditions):
            # Normally the batch report says so; this holds when a report was lost.
            conditions = with_condition(
                conditions, "ScalingUp", "False", "NothingInFlight", "no runner in flight", now
            )
        at_size = seen.live == seen.desired and not seen.in_flight
        conditions = with_condition(
            conditions,
            "Ready",
            "True" if at_size else "False",
            "AtDesiredSize" if at_size else "Converging",
            f"{seen.live}/{seen.desired} runners"
            + (f", {seen.draining} busy runners draining" if seen.draining else ""),
            now,
        )
        if scale_set.max_runners is not None and scale_set.replicas > scale_set.max_runners:
            conditions = with_condition(
                conditions,
                "ReplicasClamped",
                "True",
                "AboveMaxRunners",
                f"spec.replicas is {scale_set.replicas}, above spec.maxRunners "
                f"({scale_set.max_runners}); {scale_set.max_runners} runners are kept",
                now,
            )
        elif scale_set.replicas < scale_set.min_runners:
            conditions = with_condition(
                conditions,
                "ReplicasClamped",
                "True",
                "BelowMinRunners",
                f"spec.replicas is {scale_set.replicas}, below spec.minRunners "
                f"({scale_set.min_runners}); {scale_set.min_runners} runners are kept",
                now,
            )
        elif any(c.get("type") == "ReplicasClamped" for c in conditions):
            conditions = with_condition(
                conditions, "ReplicasClamped", "False", "WithinBounds", "spec.replicas is used", now
            )
        if seen.throttled is not None:
            conditions = with_condition(conditions, "Throttled", "True", *seen.throttled, now)
        elif any(c.get("type") == "Throttled" and c.get("status") == "True" for c in conditions):
            conditions = with_condition(
                conditions,
                "Throttled",
                "False",
                "NotThrottled",
                "the credential has budget and no pause",
                now,
            )
        if seen.failing_to_start:
            conditions = with_condition(
                conditions,
                "Degraded",
                "True",
                "RunnersFailingToStart",
                f"runners fail to start: {seen.failing_to_start}; check spec.template",
                now,
            )
        elif seen.failing_creations:
            conditions = with_condition(
                conditions,
                "Degraded",
                "True",
                "CreationsFailing",
                f"runner creations fail: {seen.failing_creations}; one runner at a time "
                "probes until one succeeds",
                now,
            )
        status["conditions"] = conditions
        return status

    return change


def degraded_change(reason: str, message: str, now: str) -> StatusChange:
    """Degraded and not Ready, for a scale set the provisioner cannot act on as it stands."""

    def change(status: dict) -> dict:
        conditions = with_condition(
            status.get("conditions") or [], "Degraded", "True", reason, message, now
        )
        status["conditions"] = with_condition(conditions, "Ready", "False", reason, message, now)
        return status

    return change


def report_observed(api: k8s.ApiClient, scale_set: ScaleSet, seen: ObservedStatus) -> None:
    metrics.SCALE_SET_DESIRED.labels(scale_set=scale_set.key).set(seen.desired)
    metrics.SCALE_SET_CURRENT.labels(scale_set=scale_set.key).set(seen.live)
    metrics.SCALE_SET_BUSY_DRAINING.labels(scale_set=scale_set.key).set(seen.draining)
    update_status(
        api,
        scale_set.namespace,
        scale_set.name,
        observed_status_change(scale_set, seen, now_rfc3339()),
    )


def report_invalid(api: k8s.ApiClient, namespace: str, name: str, error: ScaleSetSpecError) -> None:
    log.warning("%s/%s: %s", namespace, name, error)
    update_status(api, namespace, name, degraded_change("InvalidSpec", str(error), now_rfc3339()))


def report_blocked(api: k8s.ApiClient, scale_set: ScaleSet, reason: str, message: str) -> None:
    log.warning("%s: %s", scale_set.key, message)
    update_status(
        api, scale_set.namespace, scale_set.name, degraded_change(reason, message, now_rfc3339())
    )
