"""What GitHub's front door decides before an endpoint runs: the GitHub Enterprise Server
path prefix, the User-Agent and API version checks, the body's shape and the request id."""

from __future__ import annotations

import json
import secrets
from typing import Any

from provisioner.ghsim.routing import Response, error

GHES_PREFIX = "/api/v3"
# The REST API versions GitHub serves (docs.github.com, "API Versions").
API_VERSIONS = ("2022-11-28", "2026-03-10")
API_VERSIONS_DOCS = "https://docs.github.com/rest/about-the-rest-api/api-versions"
USER_AGENT_DOCS = (
    "https://docs.github.com/rest/using-the-rest-api/getting-started-with-the-rest-api"
)

BAD_JSON = object()
JSON_NULL = object()  # a body of ``null``: not an object, unlike no body at all (None)


def split_ghes_prefix(path: str) -> tuple[str, str]:
    """(prefix, route path): ``/api/v3/orgs/o/...`` is GHES's form of ``/orgs/o/...``."""
    if path == GHES_PREFIX or path.startswith(GHES_PREFIX + "/"):
        return GHES_PREFIX, path.removeprefix(GHES_PREFIX)
    return "", path


def edge_refusal(headers: dict[str, str]) -> Response | None:
    """GitHub's refusal of a request without a User-Agent or with an API version it lacks."""
    if not headers.get("user-agent", "").strip():
        return error(
            403,
            "Request forbidden by administrative rules. Please make sure your request has a "
            "User-Agent header.",
            USER_AGENT_DOCS,
        )
    version = headers.get("x-github-api-version")
    if version is not None and version not in API_VERSIONS:
        return error(
            400,
            f"Unsupported 'X-GitHub-Api-Version' header value: {version!r}. Supported versions "
            f"are {', '.join(API_VERSIONS)}.",
            API_VERSIONS_DOCS,
        )
    return None


def parse_body(body: bytes) -> Any:
    """The JSON body; None without one, BAD_JSON or JSON_NULL for what handlers cannot take."""
    if not body.strip():
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return BAD_JSON
    return JSON_NULL if parsed is None else parsed


def body_refusal(parsed: Any, docs_url: str) -> Response | None:
    if parsed is BAD_JSON:
        return error(400, "Problems parsing JSON", docs_url)
    if parsed is not None and not isinstance(parsed, dict):
        return error(400, "Body should be a JSON object", docs_url)
    return None


def request_id() -> str:
    """Shaped like GitHub's X-GitHub-Request-Id: hex groups joined by colons."""
    return ":".join(secrets.token_hex(size).upper() for size in (2, 3, 4, 4, 4))
