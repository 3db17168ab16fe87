"""Parsing workflow_job payloads and listed jobs: what demand needs, or the field that is wrong."""

from __future__ import annotations

import pytest

from provisioner.autoscale.demand import JobStatus
from provisioner.autoscale.events import InvalidEvent, parse_job, parse_workflow_job


def payload(**job: object) -> dict[str, object]:
    return {
        "action": "in_progress",
        "workflow_job": {"id": 9, "status": "in_progress", "labels": ["self-hosted"], **job},
        "repository": {"full_name": "Octo-Org/Octo-Repo"},
    }


def test_the_action_is_the_status_and_times_are_read() -> None:
    event = parse_workflow_job(
        payload(created_at="2026-01-01T00:00:00Z", started_at="2026-01-01T00:00:42Z")
    )
    assert (event.job_id, event.status, event.labels) == (
        9,
        JobStatus.IN_PROGRESS,
        ("self-hosted",),
    )
    assert event.repository == "octo-org/octo-repo"
    assert event.started_at is not None and event.created_at is not None
    assert event.started_at - event.created_at == 42


def test_statuses_that_are_no_demand_parse_to_none() -> None:
    waiting = parse_workflow_job({**payload(), "action": "waiting"})
    assert waiting.status is None
    listed = parse_job({"id": 3, "status": "pending", "labels": ["x"]}, "o/r")
    assert listed.status is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "queued", "workflow_job": {}, "repository": {}}, "repository.full_name"),
        ({**payload(), "action": 3}, "action"),
        (payload(id=0), "workflow_job.id"),
        (payload(id=True), "workflow_job.id"),
        (payload(labels="self-hosted"), "workflow_job.labels"),
        (payload(labels=[1]), "workflow_job.labels"),
    ],
)
def test_a_bad_payload_names_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidEvent, match=field.replace(".", r"\.")):
        parse_workflow_job(body)
