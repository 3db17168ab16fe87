"""Prometheus metrics of every process. Each process has its own registry (the default one);
Prometheus sums them across worker processes, so a creation is counted by the one worker
that made it."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

RUNNER_CREATION_SECONDS = Histogram(
    "provisioner_runner_creation_seconds",
    "Seconds from a creation task's start to its runner's Pod existing (or its rollback).",
    ["scale_set", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 30, 60, 120),
)
RUNNER_CREATIONS = Counter(
    "provisioner_runner_creations_total",
    "Runner creations by outcome (created, failed) and failure reason.",
    ["scale_set", "outcome", "reason"],
)
RUNNERS_IN_FLIGHT = Gauge(
    "provisioner_runners_in_flight",
    "Runner creations running in this process now.",
    ["scale_set"],
)
SCALE_SET_DESIRED = Gauge(
    "provisioner_scale_set_desired_runners", "Desired runners (clamped).", ["scale_set"]
)
SCALE_SET_CURRENT = Gauge(
    "provisioner_scale_set_current_runners", "Runner pods not finished.", ["scale_set"]
)
SCALE_SET_BUSY_DRAINING = Gauge(
    "provisioner_scale_set_draining_runners",
    "Runners to remove that are busy with a job and wait for it to finish.",
    ["scale_set"],
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "provisioner_rate_limit_wait_seconds",
    "Seconds spent waiting for a token of a global rate limit or a concurrency slot.",
    ["limit"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
)
GITHUB_RATE_LIMIT_REMAINING = Gauge(
    "provisioner_github_rate_limit_remaining",
    "x-ratelimit-remaining of the credential's most recent authenticated answer.",
    ["credential", "resource"],
)
GITHUB_THROTTLED = Counter(
    "provisioner_github_throttled_total",
    "Answers in which GitHub refused a credential's call for its rate limits (429/403).",
    ["credential"],
)
GITHUB_PAUSED_UNTIL = Gauge(
    "provisioner_github_credential_paused_until_seconds",
    "Epoch seconds until which GitHub asked a credential to wait (Retry-After, spent budget).",
    ["credential"],
)
CREDENTIAL_CREATIONS = Gauge(
    "provisioner_credential_creations_in_flight",
    "A credential's creations holding a slot of its share in this process now.",
    ["credential"],
)
CREDENTIAL_CONCURRENCY_LIMIT = Gauge(
    "provisioner_credential_concurrency_limit",
    "A credential's share of the creation concurrency now (lowered while GitHub throttles it).",
    ["credential"],
)
GITHUB_REJECTED = Counter(
    "provisioner_github_credential_rejected_total",
    "Answers in which GitHub rejected a credential (401, or 403 without a rate limit).",
    ["credential"],
)
GITHUB_REQUESTS = Counter(
    "provisioner_github_requests_total", "GitHub API requests by operation.", ["operation"]
)
BATCHES = Counter(
    "provisioner_batches_total", "Creation batches summarized, by result.", ["scale_set", "result"]
)
RUNNERS_REMOVED = Counter(
    "provisioner_runners_removed_total",
    "Runners removed, by why (scale_down, finished, failed_to_start, deleted_scale_set).",
    ["scale_set", "why"],
)
GARBAGE_COLLECTED = Counter(
    "provisioner_garbage_collected_total",
    "Leftovers removed by garbage collection, by kind (registration, secret, pod, ledger).",
    ["kind"],
)

# Every metric with a scale_set label: its series go when the scale set does.
_PER_SCALE_SET = (
    RUNNER_CREATION_SECONDS,
    RUNNER_CREATIONS,
    RUNNERS_IN_FLIGHT,
    SCALE_SET_DESIRED,
    SCALE_SET_CURRENT,
    SCALE_SET_BUSY_DRAINING,
    BATCHES,
    RUNNERS_REMOVED,
)


def scale_sets_reported() -> set[str]:
    """The scale sets (namespace/name) this process has series of."""
    return {
        sample.labels["scale_set"]
        for metric in _PER_SCALE_SET
        for family in metric.collect()
        for sample in family.samples
        if "scale_set" in sample.labels
    }


def forget_scale_set(scale_set: str) -> None:
    """Removes every series of ``scale_set`` (namespace/name), so a process that outlives many
    scale sets does not keep reporting the deleted ones."""
    for metric in _PER_SCALE_SET:
        names = metric._labelnames
        series = {
            tuple(sample.labels[n] for n in names)
            for family in metric.collect()
            for sample in family.samples
            if sample.labels.get("scale_set") == scale_set
        }
        for values in series:
            with contextlib.suppress(KeyError):
                metric.remove(*values)
