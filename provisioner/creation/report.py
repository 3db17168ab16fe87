"""Reporting a finished batch on the RunnerScaleSet: status, conditions, an Event, metrics and
a log line. Used by the Celery callback and by the sequential path alike."""

from __future__ import annotations

import datetime
import logging

from kubernetes import client as k8s

from provisioner import metrics
from provisioner.creation import outcome
from provisioner.creation.outcome import BatchSummary
from provisioner.kube.scaleset import ScaleSet, ScaleSetStore, with_condition
from provisioner.kube.status import StatusChange, update_status

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def batch_status_change(
    summary: BatchSummary, now: str, generation: int | None = None
) -> StatusChange:
    """The status change a finished batch makes (pure, so it can be tested alone)."""

    def change(status: dict) -> dict:
        conditions = status.get("conditions") or []
        conditions = with_condition(
            conditions, "ScalingUp", "False", "BatchFinished", summary.message, now
        )
        if summary.failed:
            conditions = with_condition(
                conditions, "Degraded", "True", "CreationsFailed", summary.message, now
            )
        else:
            conditions = with_condition(
                conditions, "Degraded", "False", "AllCreated", summary.message, now
            )
        rate_limited = summary.failed_by_reason.get(outcome.REASON_RATE_LIMITED, 0)
        if summary.throttled or rate_limited:
            conditions = with_condition(
                conditions,
                "Throttled",
                "True",
                "GitHubRateLimited",
                f"GitHub asked to slow down {summary.throttled} times in batch {summary.batch_id}",
                now,
            )
        # Throttled=False is the reconciler's to say: it sees whether the credential is still
        # paused or short of budget now, which a finished batch cannot.
        status["conditions"] = conditions
        # A report retried after its status write went through counts its failures once.
        already_counted = (status.get("lastBatch") or {}).get("id") == summary.batch_id
        status["lastBatch"] = summary.to_status(now)
        if not already_counted:
            status["failedCreations"] = int(status.get("failedCreations") or 0) + summary.failed
        return status

    return change


def report_batch(api: k8s.ApiClient, summary: BatchSummary) -> None:
    namespace, name = summary.scale_set.split("/", 1)
    level = logging.WARNING if summary.failed else logging.INFO
    log.log(level, "batch %s of %s: %s", summary.batch_id, summary.scale_set, summary.message)
    metrics.BATCHES.labels(
        scale_set=summary.scale_set, result="partial" if summary.failed else "complete"
    ).inc()
    obj = update_status(api, namespace, name, batch_status_change(summary, _now()))
    if obj is None:
        return
    ScaleSetStore(api).emit_event(
        ScaleSet.from_object(obj),
        "BatchPartiallyFailed" if summary.failed else "BatchCompleted",
        summary.message,
        type="Warning" if summary.failed else "Normal",
    )
