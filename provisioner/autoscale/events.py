"""A workflow_job webhook payload or a listed job, reduced to what demand needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from provisioner.autoscale.demand import JobStatus


class InvalidEvent(ValueError):
    """The payload lacks a field demand needs; the message names it."""


@dataclass(frozen=True)
class JobEvent:
    job_id: int
    status: JobStatus | None  # None: a status that is no demand (waiting, requested)
    labels: tuple[str, ...]
    repository: str  # owner/repo
    created_at: float | None = None
    started_at: float | None = None


def parse_workflow_job(payload: Any) -> JobEvent:
    """The event of a ``workflow_job`` delivery; InvalidEvent names a missing or bad field."""
    if not isinstance(payload, dict):
        raise InvalidEvent("the body must be a JSON object")
    repository = payload.get("repository")
    full_name = repository.get("full_name") if isinstance(repository, dict) else None
    if not isinstance(full_name, str) or full_name.count("/") != 1:
        raise InvalidEvent("repository.full_name must be 'owner/repo'")
    action = payload.get("action")
    if not isinstance(action, str):
        raise InvalidEvent("action must be a string")
    return parse_job(payload.get("workflow_job"), full_name, status=action, field="workflow_job")


def parse_job(job: Any, repository: str, status: str | None = None, field: str = "job") -> JobEvent:
    """A job object as GitHub returns it (webhook or REST); ``status`` overrides its own."""
    if not isinstance(job, dict):
        raise InvalidEvent(f"{field} must be an object")
    job_id = job.get("id")
    if not isinstance(job_id, int) or isinstance(job_id, bool) or job_id < 1:
        raise InvalidEvent(f"{field}.id must be a positive integer")
    labels = job.get("labels")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise InvalidEvent(f"{field}.labels must be a list of strings")
    raw_status = status if status is not None else job.get("status")
    if not isinstance(raw_status, str):
        raise InvalidEvent(f"{field}.status must be a string")
    try:
        known: JobStatus | None = JobStatus(raw_status)
    except ValueError:
        known = None
    return JobEvent(
        job_id=job_id,
        status=known,
        labels=tuple(labels),
        repository=repository.lower(),
        created_at=_timestamp(job.get("created_at")),
        started_at=_timestamp(job.get("started_at")),
    )


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
