"""Workflow jobs in the simulator: a test enqueues jobs, the simulator plays their life.

A job is queued; an online, idle runner registered for the job's repository (or its
organization or enterprise) that carries every label of the job takes it (in_progress), and
after the job's duration it completes and the ephemeral runner deregisters, as on GitHub.
Each step is sent as a signed ``workflow_job`` webhook to the configured URL, and the runs
and jobs are served as GitHub's REST API lists them, for polling.

Admin: ``POST /_sim/jobs`` enqueues, ``GET /_sim/jobs`` lists, ``POST /_sim/webhooks``
sets the URL, the secret and whether webhooks are sent at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from provisioner.ghsim.core import Simulator
from provisioner.ghsim.registry import UnknownRunner
from provisioner.ghsim.routing import Request, Response, error

log = logging.getLogger(__name__)

EXTENSION = "jobs"
DOCS = "https://docs.github.com/rest/actions/workflow-jobs"
RUNS_DOCS = "https://docs.github.com/rest/actions/workflow-runs"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
MAX_JOBS_PER_CALL = 10_000
TICK_S = 0.02
SENDERS = 4  # webhook sender threads; one job's events always go through the same one
# A self-hosted runner also carries its OS and architecture; the simulated ones are Linux x64.
RUNNER_DEFAULT_LABELS = frozenset({"self-hosted", "linux", "x64"})


def _iso(epoch: float | None) -> str | None:
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
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "completed_at": _iso(self.completed_at),
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


def _repository_payload(repository: str) -> dict[str, Any]:
    owner, name = repository.split("/", 1)
    return {
        "id": zlib.crc32(repository.lower().encode()),
        "name": name,
        "full_name": repository,
        "private": True,
        "owner": {"login": owner, "type": "Organization"},
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class JobBoard:
    """Jobs and runs of every repository, and the threads that play them and send webhooks."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self._lock = threading.Lock()
        self._jobs: dict[int, SimJob] = {}
        self._runs: dict[int, list[int]] = {}
        self._next_job = 1001
        self._next_run = 501
        self.webhook = WebhookTarget()
        self.sent: dict[str, int] = {"delivered": 0, "failed": 0, "suppressed": 0}
        self._player: threading.Thread | None = None
        self._outboxes: list[queue.Queue[tuple[int, bytes] | None]] = []
        self._senders: list[threading.Thread] = []
        self._generation = 0  # bumped by reset, so queued sends from before it are dropped

    # Jobs.

    def enqueue(
        self, repository: str, labels: list[str], count: int, duration_s: float
    ) -> tuple[int, list[SimJob]]:
        now = time.time()
        with self._lock:
            run_id = self._next_run
            self._next_run += 1
            jobs = []
            for _ in range(count):
                job = SimJob(self._next_job, run_id, repository, labels, duration_s, now)
                self._next_job += 1
                self._jobs[job.id] = job
                jobs.append(job)
            self._runs[run_id] = [job.id for job in jobs]
            for job in jobs:
                self._send(job)
            self._ensure_player()
        return run_id, jobs

    def jobs(self) -> list[SimJob]:
        with self._lock:
            return list(self._jobs.values())

    def run_status(self, run_id: int) -> str:
        statuses = {self._jobs[job_id].status for job_id in self._runs[run_id]}
        if statuses == {"completed"}:
            return "completed"
        if statuses == {"queued"}:
            return "queued"
        return "in_progress"

    def runs_of(self, repository: str) -> list[tuple[int, str]]:
        """(run id, status) of ``repository``'s runs, newest first."""
        with self._lock:
            return [
                (run_id, self.run_status(run_id))
                for run_id in sorted(self._runs, reverse=True)
                if self._jobs[self._runs[run_id][0]].repository.lower() == repository.lower()
            ]

    def jobs_of_run(self, repository: str, run_id: int) -> list[SimJob] | None:
        with self._lock:
            ids = self._runs.get(run_id)
            if not ids or self._jobs[ids[0]].repository.lower() != repository.lower():
                return None
            return [self._jobs[job_id] for job_id in ids]

    def set_webhook(self, target: WebhookTarget) -> None:
        with self._lock:
            self.webhook = target

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._runs.clear()
            self.webhook = WebhookTarget()
            self.sent = {"delivered": 0, "failed": 0, "suppressed": 0}
            self._generation += 1

    # Playing the jobs.

    def _ensure_player(self) -> None:
        if self._player is None or not self._player.is_alive():
            self._player = threading.Thread(target=self._play, name="ghsim-jobs", daemon=True)
            self._player.start()

    def _play(self) -> None:
        while True:
            with self._lock:
                if all(job.status == "completed" for job in self._jobs.values()):
                    self._player = None
                    return
            self.tick(time.time())
            time.sleep(TICK_S)

    def tick(self, now: float) -> None:
        """Finish jobs whose time is up, then give queued jobs to idle matching runners."""
        with self._lock:
            for job in self._jobs.values():
                if job.status == "in_progress" and now >= (job.started_at or now) + job.duration_s:
                    self._complete(job, now)
            queued = [job for job in self._jobs.values() if job.status == "queued"]
            if not queued:
                return
            busy = {job.runner_id for job in self._jobs.values() if job.status == "in_progress"}
            idle = [
                runner
                for runner in self.simulator.registry.all()
                if runner.status == "online" and not runner.busy and runner.id not in busy
            ]
            for job in sorted(queued, key=lambda j: j.id):
                runner = next((r for r in idle if _can_run(r, job)), None)
                if runner is None:
                    continue
                idle.remove(runner)
                try:
                    self.simulator.registry.set_state(str(runner.id), "busy")
                except UnknownRunner:
                    continue
                job.status, job.started_at = "in_progress", now
                job.runner_id, job.runner_name = runner.id, runner.name
                self._send(job)

    def _complete(self, job: SimJob, now: float) -> None:
        job.status, job.completed_at = "completed", now
        if job.runner_id is not None:
            # The ephemeral runner deregisters itself once its one job is done.
            with contextlib.suppress(UnknownRunner):
                self.simulator.registry.set_state(str(job.runner_id), "finished")
        self._send(job)

    # Webhooks.

    def _send(self, job: SimJob) -> None:
        """Queue the job's current state as a webhook (called with the lock held)."""
        target = self.webhook
        if target.url is None or not target.enabled:
            self.sent["suppressed"] += 1
            return
        payload = {
            "action": job.status,
            "workflow_job": job.to_github(),
            "repository": _repository_payload(job.repository),
            "sender": {"login": "ghsim", "type": "Bot"},
        }
        if not self._senders:
            for index in range(SENDERS):
                outbox: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
                sender = threading.Thread(
                    target=self._deliver, args=(outbox,), name=f"ghsim-webhook-{index}", daemon=True
                )
                sender.start()
                self._outboxes.append(outbox)
                self._senders.append(sender)
        self._outboxes[job.id % SENDERS].put((self._generation, json.dumps(payload).encode()))

    def _deliver(self, outbox: queue.Queue[tuple[int, bytes] | None]) -> None:
        with httpx.Client(timeout=10.0) as http:
            while True:
                item = outbox.get()
                if item is None:
                    return
                generation, body = item
                with self._lock:
                    target = self.webhook
                    current = generation == self._generation
                if not current or target.url is None:
                    continue
                headers = {
                    "content-type": "application/json",
                    "user-agent": "GitHub-Hookshot/ghsim",
                    "x-github-event": "workflow_job",
                    "x-github-delivery": str(uuid.uuid4()),
                    "x-github-hook-id": "1",
                }
                if target.secret:
                    headers["x-hub-signature-256"] = signature(target.secret, body)
                try:
                    response = http.post(target.url, content=body, headers=headers)
                    delivered = response.status_code < 300
                except httpx.HTTPError:
                    delivered = False
                with self._lock:
                    self.sent["delivered" if delivered else "failed"] += 1


def _can_run(runner: Any, job: SimJob) -> bool:
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


def board(simulator: Simulator) -> JobBoard:
    return simulator.extensions[EXTENSION]


def install(simulator: Simulator) -> None:
    jobs_board = JobBoard(simulator)
    simulator.extensions[EXTENSION] = jobs_board
    simulator.on_reset(jobs_board.reset)
    add = simulator.router.add
    add(
        "GET",
        "/repos/{owner}/{repo}/actions/runs",
        _list_runs,
        endpoint="list-workflow-runs",
        docs_url=RUNS_DOCS,
    )
    add(
        "GET",
        "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
        _list_run_jobs,
        endpoint="list-workflow-run-jobs",
        docs_url=DOCS,
    )
    add("POST", "/_sim/jobs", _enqueue, endpoint="admin", resource="")
    add("GET", "/_sim/jobs", _jobs, endpoint="admin", resource="")
    add("GET", "/_sim/webhooks", _webhooks, endpoint="admin", resource="")
    add("POST", "/_sim/webhooks", _configure_webhooks, endpoint="admin", resource="")


# GitHub endpoints.


def _page(request: Request, docs_url: str) -> tuple[int, int] | Response:
    try:
        per_page = int(request.query.get("per_page", DEFAULT_PER_PAGE))
        page = int(request.query.get("page", 1))
    except ValueError:
        return error(422, "per_page and page must be integers", docs_url)
    return max(1, min(per_page, MAX_PER_PAGE)), max(1, page)


def _list_runs(simulator: Simulator, request: Request) -> Response:
    paging = _page(request, RUNS_DOCS)
    if isinstance(paging, Response):
        return paging
    per_page, page = paging
    repository = f"{request.params['owner']}/{request.params['repo']}"
    wanted = request.query.get("status")
    runs = [
        (run_id, status)
        for run_id, status in board(simulator).runs_of(repository)
        if wanted is None or status == wanted
    ]
    chosen = runs[(page - 1) * per_page : page * per_page]
    return Response(
        200,
        {
            "total_count": len(runs),
            "workflow_runs": [_run_body(repository, run_id, status) for run_id, status in chosen],
        },
    )


def _run_body(repository: str, run_id: int, status: str) -> dict[str, Any]:
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
        "repository": _repository_payload(repository),
    }


def _list_run_jobs(simulator: Simulator, request: Request) -> Response:
    paging = _page(request, DOCS)
    if isinstance(paging, Response):
        return paging
    per_page, page = paging
    repository = f"{request.params['owner']}/{request.params['repo']}"
    try:
        run_id = int(request.params["run_id"])
    except ValueError:
        return error(404, "Not Found", DOCS)
    jobs = board(simulator).jobs_of_run(repository, run_id)
    if jobs is None:
        return error(404, "Not Found", DOCS)
    chosen = jobs[(page - 1) * per_page : page * per_page]
    return Response(200, {"total_count": len(jobs), "jobs": [job.to_github() for job in chosen]})


# Admin endpoints.


def _enqueue(simulator: Simulator, request: Request) -> Response:
    body = request.body
    if not isinstance(body, dict):
        return error(422, 'send {"repository": "owner/repo", "labels": [...], "count": N}')
    repository = body.get("repository")
    labels = body.get("labels")
    count = body.get("count", 1)
    duration_s = body.get("duration_s", 1.0)
    if not isinstance(repository, str) or repository.count("/") != 1 or "" in repository.split("/"):
        return error(422, "repository must be 'owner/repo'")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        return error(422, "labels must be a non-empty list of strings")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_JOBS_PER_CALL:
        return error(422, f"count must be an integer from 1 to {MAX_JOBS_PER_CALL}")
    if not isinstance(duration_s, int | float) or isinstance(duration_s, bool) or duration_s < 0:
        return error(422, "duration_s must be a number >= 0")
    run_id, jobs = board(simulator).enqueue(repository, labels, count, float(duration_s))
    return Response(201, {"run_id": run_id, "job_ids": [job.id for job in jobs]})


def _jobs(simulator: Simulator, request: Request) -> Response:
    jobs_board = board(simulator)
    jobs = sorted(jobs_board.jobs(), key=lambda job: job.id)
    counts = {status: 0 for status in ("queued", "in_progress", "completed")}
    for job in jobs:
        counts[job.status] += 1
    return Response(
        200,
        {
            "counts": counts,
            "jobs": [{**job.to_github(), "repository": job.repository} for job in jobs],
        },
    )


def _webhooks(simulator: Simulator, request: Request) -> Response:
    jobs_board = board(simulator)
    return Response(200, {**jobs_board.webhook.public(), "deliveries": dict(jobs_board.sent)})


def _configure_webhooks(simulator: Simulator, request: Request) -> Response:
    body = request.body
    if not isinstance(body, dict):
        return error(422, 'send {"url": "...", "secret": "...", "enabled": true}')
    jobs_board = board(simulator)
    current = jobs_board.webhook
    url = body.get("url", current.url)
    secret = body.get("secret", current.secret)
    enabled = body.get("enabled", current.enabled)
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        return error(422, "url must be an http(s) URL or null")
    if not isinstance(secret, str):
        return error(422, "secret must be a string")
    if not isinstance(enabled, bool):
        return error(422, "enabled must be true or false")
    jobs_board.set_webhook(WebhookTarget(url, secret, enabled))
    return Response(200, jobs_board.webhook.public())


class JobsAdmin:
    """Client of the jobs admin endpoints, for tests and benchmarks."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/") + "/_sim", timeout=timeout)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            message = response.json().get("message")
            raise RuntimeError(f"{method} /_sim{path}: {response.status_code} {message}")
        return response.json()

    def enqueue(
        self, repository: str, labels: list[str], count: int = 1, duration_s: float = 1.0
    ) -> list[int]:
        body = {
            "repository": repository,
            "labels": labels,
            "count": count,
            "duration_s": duration_s,
        }
        return self._call("POST", "/jobs", {**body, "duration_s": duration_s})["job_ids"]

    def jobs(self) -> dict[str, Any]:
        """``{"counts": {"queued": n, "in_progress": n, "completed": n}, "jobs": [...]}``."""
        return self._call("GET", "/jobs")

    def webhooks(self) -> dict[str, Any]:
        return self._call("GET", "/webhooks")

    def configure_webhooks(self, **settings: Any) -> dict[str, Any]:
        """``url``, ``secret`` and ``enabled`` (False stops sending, as lost webhooks)."""
        return self._call("POST", "/webhooks", settings)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JobsAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
