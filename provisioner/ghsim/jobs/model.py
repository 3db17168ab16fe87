"""Workflow jobs as GitHub shows them, and the webhook target: data and pure rules only."""

from __future__ import annotations

import hashlib
import hmac
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from provisioner.ghsim.registry import Registration

# A self-hosted runner also carries its OS and architecture; the simulated ones are Linux x64.
RUNNER_DEFAULT_LABELS = frozenset({"self-hosted", "linux", "x64"})


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SimJob:
    id: int
    run_id: int
    repository: str  # owner/repo as given
    labels: list[str]
    duration_s: float
    created_at: float
    status: str = "queued"
    started_at: float | None = None
    completed_at: float | None = None
    runner_id: int | None = None
    runner_name: str | None = None

    def to_github(self) -> dict[str, Any]:
        owner_repo = self.repository
        return {
            "id": self.id,
            "run_id": self.run_id,
            "run_url": f"https://api.github.com/repos/{owner_repo}/actions/runs/{self.run_id}",
            "run_attempt": 1,
            "node_id": f"CR_sim{self.id}",
            "head_sha": "0" * 40,
            "url": f"https://api.github.com/repos/{owner_repo}/actions/jobs/{self.id}",
            "html_url": f"https://github.com/{owner_repo}/actions/runs/{self.run_id}/job/{self.id}",
            "status": self.status,
            "conclusion": "success" if self.status == "completed" else None,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "name": f"job-{self.id}",
            "steps": [],
            "check_run_url": f"https://api.github.com/repos/{owner_repo}/check-runs/{self.id}",
            "labels": list(self.labels),
            "runner_id": self.runner_id,
            "runner_name": self.runner_name,
            "runner_group_id": 1 if self.runner_id is not None else None,
            "runner_group_name": "Default" if self.runner_id is not None else None,
            "workflow_name": "simulated",
            "head_branch": "main",
        }


@dataclass
class WebhookTarget:
    url: str | None = None
    secret: str = field(default="", repr=False)
    enabled: bool = True

    def public(self) -> dict[str, Any]:
        return {"url": self.url, "enabled": self.enabled, "signed": bool(self.secret)}


def repository_payload(repository: str) -> dict[str, Any]:
    owner, name = repository.split("/", 1)
    return {
        "id": zlib.crc32(repository.lower().encode()),
        "name": name,
        "full_name": repository,
        "private": True,
        "owner": {"login": owner, "type": "Organization"},
    }


def run_body(repository: str, run_id: int, status: str) -> dict[str, Any]:
    return {
        "id": run_id,
        "name": "simulated",
        "run_number": run_id,
        "event": "push",
        "status": status,
        "conclusion": "success" if status == "completed" else None,
        "head_branch": "main",
        "head_sha": "0" * 40,
        "url": f"https://api.github.com/repos/{repository}/actions/runs/{run_id}",
        "jobs_url": f"https://api.github.com/repos/{repository}/actions/runs/{run_id}/jobs",
        "repository": repository_payload(repository),
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def can_run(runner: Registration, job: SimJob) -> bool:
    """The runner is registered where the job's repository sees it and carries its labels."""
    owner = job.repository.split("/", 1)[0].lower()
    scope = runner.scope
    in_scope = (
        scope == f"repos/{job.repository.lower()}"
        or scope == f"orgs/{owner}"
        or scope.startswith("enterprises/")
    )
    if not in_scope:
        return False
    carried = {str(label["name"]).lower() for label in runner.labels} | RUNNER_DEFAULT_LABELS
    return {label.lower() for label in job.labels} <= carried
