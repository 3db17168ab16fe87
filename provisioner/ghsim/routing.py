"""The route table: (method, GitHub path template, handler), matched in order.

Other modules add routes with ``Router.add``; the template (``/repos/{owner}/{repo}/...``) is
also the key the counters use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.ghsim.auth import Caller
    from provisioner.ghsim.core import Simulator

DOCS = "https://docs.github.com/rest"


@dataclass
class Request:
    method: str
    path: str  # the route's path, without the GHES prefix
    template: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    caller: Caller | None = None
    prefix: str = ""  # "/api/v3" when asked in the GHES form

    @property
    def url_path(self) -> str:
        """The path as the client asked it, for links back to the simulator."""
        return self.prefix + self.path


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["Simulator", Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    endpoint: str  # the name fault and error knobs use
    resource: str  # primary rate-limit resource; "" for admin routes (no auth, not counted)
    docs_url: str
    app_jwt: bool  # the App's own JWT is accepted (App endpoints); else PAT/installation token
    counted: bool  # spends from the primary rate limit (GET /rate_limit does not)


def template_pattern(template: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    # No optional trailing slash: GitHub answers 404 to ``/orgs/acme/actions/runners/``.
    return re.compile(f"^{regex}$")


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        *,
        endpoint: str,
        resource: str = "core",
        docs_url: str = DOCS,
        app_jwt: bool = False,
        counted: bool = True,
    ) -> None:
        pattern = template_pattern(template)
        self.routes.append(
            Route(
                method, template, pattern, handler, endpoint, resource, docs_url, app_jwt, counted
            )
        )

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, found.groupdict()
        return None


def error(status: int, message: str, docs_url: str = DOCS, **extra: Any) -> Response:
    """GitHub's error body: a message and the documentation URL of the endpoint."""
    return Response(status, {"message": message, "documentation_url": docs_url, **extra})
