"""The jobs' HTTP routes: GitHub's runs and jobs lists (what polling reads) and the
``/_sim/jobs`` and ``/_sim/webhooks`` admin endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from provisioner.ghsim.jobs.model import WebhookTarget, run_body
from provisioner.ghsim.jobs.player import JobBoard
from provisioner.ghsim.routing import Request, Response, error

if TYPE_CHECKING:
    from provisioner.ghsim.core import Simulator

EXTENSION = "jobs"
DOCS = "https://docs.github.com/rest/actions/workflow-jobs"
RUNS_DOCS = "https://docs.github.com/rest/actions/workflow-runs"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
MAX_JOBS_PER_CALL = 10_000


def board(simulator: Simulator) -> JobBoard:
    return cast(JobBoard, simulator.extensions[EXTENSION])


def install(simulator: Simulator) -> None:
    jobs_board = JobBoard(simulator.registry)
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
            "workflow_runs": [run_body(repository, run_id, status) for run_id, status in chosen],
        },
    )


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
