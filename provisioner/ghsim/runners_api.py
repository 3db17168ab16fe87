"""Self-hosted runner endpoints for repository, organization and enterprise scope."""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from provisioner.ghsim.core import Simulator
from provisioner.ghsim.registry import (
    DuplicateRunner,
    RunnerGroupFull,
    RunnerIsBusy,
    UnknownRunner,
)
from provisioner.ghsim.routing import Request, Response, error

SCOPE_PREFIXES = {
    "repos": "/repos/{owner}/{repo}",
    "orgs": "/orgs/{org}",
    "enterprises": "/enterprises/{enterprise}",
}
DOCS = {
    "repos": "https://docs.github.com/rest/actions/self-hosted-runners",
    "orgs": "https://docs.github.com/rest/actions/self-hosted-runners",
    "enterprises": "https://docs.github.com/enterprise-cloud@latest/rest/actions/self-hosted-runners",
}
REGISTRATION = "actions_runner_registration"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
REGISTRATION_TOKEN_TTL_S = 3600


def install(simulator: Simulator) -> None:
    for kind, prefix in SCOPE_PREFIXES.items():
        base = f"{prefix}/actions/runners"
        docs = DOCS[kind]
        add = simulator.router.add
        add(
            "POST",
            f"{base}/generate-jitconfig",
            _generate_jitconfig,
            endpoint="generate-jitconfig",
            resource=REGISTRATION,
            docs_url=docs,
        )
        add(
            "POST",
            f"{base}/registration-token",
            _token,
            endpoint="registration-token",
            resource=REGISTRATION,
            docs_url=docs,
        )
        add(
            "POST",
            f"{base}/remove-token",
            _token,
            endpoint="remove-token",
            resource=REGISTRATION,
            docs_url=docs,
        )
        add("GET", base, _list_runners, endpoint="list-runners", docs_url=docs)
        add("GET", f"{base}/{{runner_id}}", _get_runner, endpoint="get-runner", docs_url=docs)
        add(
            "DELETE",
            f"{base}/{{runner_id}}",
            _delete_runner,
            endpoint="delete-runner",
            docs_url=docs,
        )


def scope_of(request: Request) -> str:
    """The registry key of the request's scope, case-insensitive like GitHub's names."""
    kind = request.path.strip("/").split("/", 1)[0]
    names = [
        request.params[key]
        for key in ("owner", "repo", "org", "enterprise")
        if key in request.params
    ]
    return "/".join([kind, *names]).lower()


def _docs(request: Request) -> str:
    return DOCS[request.path.strip("/").split("/", 1)[0]]


def _invalid(request: Request, problem: str) -> Response:
    return error(422, f"Invalid request.\n\n{problem}", _docs(request))


def _generate_jitconfig(simulator: Simulator, request: Request) -> Response:
    body = request.body
    if not isinstance(body, dict):
        return _invalid(request, "The request body must be a JSON object.")
    name, group, labels = body.get("name"), body.get("runner_group_id"), body.get("labels")
    for field, value in (("name", name), ("runner_group_id", group), ("labels", labels)):
        if value is None:
            return _invalid(request, f'"{field}" wasn\'t supplied.')
    if not isinstance(name, str) or not name.strip():
        return _invalid(request, 'For "name", a non-empty string is expected.')
    if not isinstance(group, int) or isinstance(group, bool):
        return _invalid(request, f'For "runner_group_id", {group!r} is not an integer.')
    if (
        not isinstance(labels, list)
        or not 1 <= len(labels) <= 100
        or not all(isinstance(label, str) and label for label in labels)
    ):
        return _invalid(request, 'For "labels", 1 to 100 non-empty strings are expected.')
    if "work_folder" in body and not isinstance(body["work_folder"], str):
        return _invalid(request, 'For "work_folder", a string is expected.')
    config = simulator.config
    if group not in config.runner_group_ids:
        return error(404, "Not Found", _docs(request))
    scope = scope_of(request)
    if simulator.registry.in_scope(scope, name):
        return _already_exists(request, name)
    wait_s = simulator.registrations.take(
        scope, 1, config.registrations_per_window, config.registration_window_s, time.time()
    )
    if wait_s:
        simulator.counters.event("registrations_capped")
        refusal = error(
            429,
            f"Too many runner registrations: at most {config.registrations_per_window} every "
            f"{config.registration_window_s:g} seconds for {scope}.",
            _docs(request),
        )
        refusal.headers["retry-after"] = str(max(1, math.ceil(wait_s)))
        return refusal
    try:
        runner, encoded = simulator.registry.register(
            scope, name, group, labels, max_per_group=config.runners_per_group
        )
    except DuplicateRunner:
        simulator.registrations.give_back(scope)
        return _already_exists(request, name)
    except RunnerGroupFull:
        simulator.registrations.give_back(scope)
        return _invalid(
            request,
            f"The runner group {group} already has {config.runners_per_group} runners, "
            "the most it can hold.",
        )
    return Response(201, {"runner": runner.to_github(), "encoded_jit_config": encoded})


def _already_exists(request: Request, name: str) -> Response:
    return error(
        409, f"Already exists - A runner with the name {name} already exists.", _docs(request)
    )


def _token(simulator: Simulator, request: Request) -> Response:
    expires_at = datetime.fromtimestamp(time.time() + REGISTRATION_TOKEN_TTL_S, UTC)
    return Response(
        201,
        {
            "token": secrets.token_hex(15).upper(),
            "expires_at": expires_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
    )


def _positive_int(request: Request, name: str, default: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def _list_runners(simulator: Simulator, request: Request) -> Response:
    per_page = _positive_int(request, "per_page", DEFAULT_PER_PAGE)
    page = _positive_int(request, "page", 1)
    if per_page is None or page is None:
        return _invalid(request, '"per_page" and "page" must be positive integers.')
    per_page = min(per_page, MAX_PER_PAGE)
    runners = simulator.registry.in_scope(scope_of(request), request.query.get("name"))
    start = (page - 1) * per_page
    body = {
        "total_count": len(runners),
        "runners": [runner.to_github() for runner in runners[start : start + per_page]],
    }
    response = Response(200, body)
    link = _link_header(request, page, per_page, max(1, math.ceil(len(runners) / per_page)))
    if link:
        response.headers["link"] = link
    return response


def _link_header(request: Request, page: int, per_page: int, last: int) -> str:
    host = request.headers.get("host", "localhost")
    kept = {k: v for k, v in request.query.items() if k not in ("page", "per_page")}

    def url(target: int) -> str:
        query = urlencode({**kept, "per_page": per_page, "page": target})
        return f"http://{host}{request.url_path}?{query}"

    links = []
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(min(page - 1, last))}>; rel="prev"', f'<{url(1)}>; rel="first"']
    return ", ".join(links)


def _runner_id(request: Request) -> int | None:
    raw = request.params["runner_id"]
    return int(raw) if raw.isdigit() else None


def _get_runner(simulator: Simulator, request: Request) -> Response:
    runner_id = _runner_id(request)
    try:
        if runner_id is None:
            raise UnknownRunner(request.params["runner_id"])
        runner = simulator.registry.get(scope_of(request), runner_id)
    except UnknownRunner:
        return error(404, "Not Found", _docs(request))
    return Response(200, runner.to_github())


def _delete_runner(simulator: Simulator, request: Request) -> Response:
    runner_id = _runner_id(request)
    try:
        if runner_id is None:
            raise UnknownRunner(request.params["runner_id"])
        simulator.registry.delete(scope_of(request), runner_id)
    except UnknownRunner:
        return error(404, "Not Found", _docs(request))
    except RunnerIsBusy as busy:
        return error(
            422, f'Bad request - Runner "{busy.args[0]}" is still running a job"', _docs(request)
        )
    return Response(204)
