"""GitHub App installation access tokens (a valid App JWT buys a token that expires), and
GET /rate_limit, which reports a caller's budgets without spending from them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from provisioner.ghsim.core import Simulator
from provisioner.ghsim.routing import Request, Response, error

DOCS = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"
RATE_LIMIT_DOCS = "https://docs.github.com/rest/rate-limit/rate-limit"
TOKEN_PERMISSIONS = {"administration": "write", "organization_self_hosted_runners": "write"}


def install(simulator: Simulator) -> None:
    simulator.router.add(
        "POST",
        "/app/installations/{installation_id}/access_tokens",
        _create_access_token,
        endpoint="access-token",
        docs_url=DOCS,
        app_jwt=True,
    )
    simulator.router.add(
        "GET",
        "/rate_limit",
        _rate_limit,
        endpoint="rate-limit",
        docs_url=RATE_LIMIT_DOCS,
        counted=False,
    )


def _rate_limit(simulator: Simulator, request: Request) -> Response:
    assert request.caller is not None
    now = time.time()
    window_s = simulator.config.rate_limit_window_s
    rules = simulator.credential_rules.get(request.caller.key)
    resources = {}
    for resource in ("core", "actions_runner_registration"):
        limit = simulator.limit_of(resource, rules)
        decision = simulator.primary.peek(request.caller.key, resource, limit, window_s, now)
        resources[resource] = {
            "limit": decision.limit,
            "remaining": decision.remaining,
            "reset": decision.reset,
            "used": decision.used,
        }
    # Search is not simulated: its budget is reported full.
    resources["search"] = {"limit": 30, "remaining": 30, "reset": int(now) + 60, "used": 0}
    return Response(200, {"resources": resources, "rate": resources["core"]})


def _create_access_token(simulator: Simulator, request: Request) -> Response:
    simulator.counters.event("access_token_requests")
    if request.caller is None or request.caller.kind != "app":
        return error(401, "A JSON web token could not be decoded", DOCS)
    raw_id = request.params["installation_id"]
    if not raw_id.isdigit() or int(raw_id) not in simulator.config.app_installation_ids:
        return error(404, "Not Found", DOCS)
    issued = simulator.auth.issue_installation_token(
        int(raw_id), simulator.config.installation_token_ttl_s
    )
    expires_at = datetime.fromtimestamp(issued.expires_at, UTC)
    return Response(
        201,
        {
            "token": issued.token,
            "expires_at": expires_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "permissions": TOKEN_PERMISSIONS,
            "repository_selection": "all",
        },
    )
