"""Autoscaler metrics, per scale set (``namespace/name``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

QUEUED_JOBS = Gauge(
    "provisioner_autoscale_queued_jobs",
    "Jobs waiting for a runner, by the scale set they match.",
    ["scale_set"],
)
ACTIVE_JOBS = Gauge(
    "provisioner_autoscale_active_jobs",
    "Jobs queued or in progress, by the scale set they match.",
    ["scale_set"],
)
JOB_ASSIGNMENT_SECONDS = Histogram(
    "provisioner_autoscale_job_assignment_seconds",
    "Seconds from a job being queued to a runner taking it (in_progress).",
    ["scale_set"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
WEBHOOKS = Counter(
    "provisioner_autoscale_webhooks_total",
    "Webhook deliveries by event and outcome (applied, stale, duplicate, unmatched, "
    "ignored, rejected_signature, rejected_size, rejected_body).",
    ["event", "outcome"],
)
POLLS = Counter(
    "provisioner_autoscale_polls_total",
    "Polls of a repository's queued and in-progress jobs, by outcome (ok, failed).",
    ["outcome"],
)
POLL_CORRECTIONS = Counter(
    "provisioner_autoscale_poll_corrections_total",
    "Job states the polling backstop changed (a webhook was lost or late).",
    ["scale_set"],
)
SCALE_WRITES = Counter(
    "provisioner_autoscale_scale_writes_total",
    "spec.replicas writes through the scale subresource, by direction (up, down).",
    ["scale_set", "direction"],
)
