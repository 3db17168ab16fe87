"""The GitHub REST client the workers share across threads: pooled connections, typed
results and errors, GitHub App tokens refreshed before they expire."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import httpx

from provisioner import metrics
from provisioner.github.auth import (
    AppCredentials,
    Credentials,
    InstallationToken,
    InstallationTokenProvider,
    PatCredentials,
    parse_installation_token,
)
from provisioner.github.errors import (
    Conflict,
    GitHubError,
    GitHubUnavailable,
    InvalidGitHubResponse,
    NotFound,
    RateLimited,
    RunnerBusy,
    ServerError,
    Unauthorized,
)
from provisioner.github.models import (
    GitHubScope,
    JitConfig,
    RateLimitInfo,
    Runner,
    is_rate_limited,
    parse_jit_config,
    parse_rate_limit,
    parse_runner,
    parse_runner_page,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
PAGE_SIZE = 100  # GitHub's largest page
# Enough pooled connections for the threads of one worker process to never queue for one.
DEFAULT_MAX_CONNECTIONS = 100
# GitHub's error messages are short; anything longer is not worth a log line.
MAX_MESSAGE_CHARS = 200


def github_http(
    api_url: str, timeout: float = 10.0, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> httpx.Client:
    """Pooled connections to GitHub, for any number of GitHubClients (one per credential):
    building one costs tens of milliseconds (TLS setup), too much to pay per scale set."""
    return httpx.Client(
        base_url=api_url.rstrip("/"),
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "runner-provisioner",
        },
    )


class GitHubClient:
    """Thread-safe: one instance serves every thread of a process."""

    def __init__(
        self,
        api_url: str,
        credentials: Credentials,
        timeout: float = 10.0,
        on_rate_limit: Callable[[RateLimitInfo], None] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        clock: Callable[[], float] = time.time,
        http: httpx.Client | None = None,
    ) -> None:
        """``http``: connections shared with other clients, from ``github_http`` with the same
        ``api_url`` and ``timeout``; whoever made it closes it. Without it the client makes
        (and closes) its own."""
        self.credentials = credentials
        self.api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._on_rate_limit = on_rate_limit
        self._clock = clock
        self._owns_http = http is None
        self._http = http or github_http(api_url, timeout, max_connections)
        self._tokens = (
            InstallationTokenProvider(
                credentials, functools.partial(self._exchange_jwt, credentials), clock
            )
            if isinstance(credentials, AppCredentials)
            else None
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GitHubClient({self._http.base_url}, {self.credentials.describe()})"

    # Runner operations.

    def generate_jitconfig(
        self,
        scope: GitHubScope,
        name: str,
        runner_group_id: int,
        labels: list[str],
        work_folder: str = "_work",
    ) -> JitConfig:
        operation = "generate-jitconfig"
        body = {
            "name": name,
            "runner_group_id": runner_group_id,
            "labels": labels,
            "work_folder": work_folder,
        }
        response = self._call(
            "POST", f"{scope.api_path}/actions/runners/generate-jitconfig", operation, json=body
        )
        if response.status_code == 409:
            raise Conflict(
                f"{operation}: a runner named {name} already exists in {scope} "
                f"({_message(response)})",
                409,
            )
        self._expect(response, 201, operation, scope)
        return parse_jit_config(_json(response, operation), operation)

    def get_runner(self, scope: GitHubScope, runner_id: int) -> Runner:
        operation = "get-runner"
        response = self._call("GET", f"{scope.api_path}/actions/runners/{runner_id}", operation)
        self._expect(response, 200, operation, scope, f"runner {runner_id}")
        return parse_runner(_json(response, operation), operation)

    def list_runners(self, scope: GitHubScope) -> list[Runner]:
        return list(self._runner_pages(scope, "list-runners", {}))

    def list_runners_page(self, scope: GitHubScope, page: int) -> tuple[list[Runner], int]:
        """Page ``page`` (from 1) of the scope's runners, PAGE_SIZE a page, and the
        total_count GitHub reports: for callers that fetch the pages side by side."""
        return self._runner_page(scope, "list-runners", {}, page)

    def find_runner_by_name(self, scope: GitHubScope, name: str) -> Runner | None:
        # GitHub filters by ?name= on every scope; matching here too keeps the answer right
        # from a server that ignores the filter (the pages are then walked to the end).
        # Runner names are case-insensitive on GitHub.
        wanted = name.lower()
        for runner in self._runner_pages(scope, "list-runners", {"name": name}):
            if runner.name.lower() == wanted:
                return runner
        return None

    def delete_runner(self, scope: GitHubScope, runner_id: int) -> None:
        operation = "delete-runner"
        response = self._call("DELETE", f"{scope.api_path}/actions/runners/{runner_id}", operation)
        if response.status_code == 422:
            raise RunnerBusy(
                f"{operation}: runner {runner_id} in {scope} is running a job and cannot be "
                f"removed now ({_message(response)})",
                422,
            )
        self._expect(response, 204, operation, scope, f"runner {runner_id}")

    def _runner_pages(
        self, scope: GitHubScope, operation: str, params: Mapping[str, Any]
    ) -> Iterator[Runner]:
        seen = 0
        page = 1
        while True:
            runners, total = self._runner_page(scope, operation, params, page)
            yield from runners
            seen += len(runners)
            if len(runners) < PAGE_SIZE or seen >= total:
                return
            page += 1

    def _runner_page(
        self, scope: GitHubScope, operation: str, params: Mapping[str, Any], page: int
    ) -> tuple[list[Runner], int]:
        response = self._call(
            "GET",
            f"{scope.api_path}/actions/runners",
            operation,
            params={**params, "per_page": PAGE_SIZE, "page": page},
        )
        self._expect(response, 200, operation, scope)
        return parse_runner_page(_json(response, operation), operation)

    # Requests.

    def _call(self, method: str, path: str, operation: str, **kwargs: Any) -> httpx.Response:
        """An authenticated request. With an App, a 401 drops the cached installation token
        (it may have been revoked) and the request is sent once more with a fresh one."""
        if self._tokens is None:
            token = cast(PatCredentials, self.credentials).token
            response = self._send(method, path, operation, token, **kwargs)
        else:
            token = self._tokens.token()
            response = self._send(method, path, operation, token, **kwargs)
            if response.status_code == 401:
                self._tokens.invalidate(token)
                token = self._tokens.token()
                response = self._send(method, path, operation, token, **kwargs)
        if response.status_code == 401:
            self._raise(response, operation, None, token)
        return response

    def _send(
        self, method: str, path: str, operation: str, token: str, **kwargs: Any
    ) -> httpx.Response:
        metrics.GITHUB_REQUESTS.labels(operation=operation).inc()
        try:
            response = self._http.request(
                method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise GitHubUnavailable(
                f"{operation}: no answer from GitHub within {self._timeout:g}s "
                f"({type(exc).__name__}); the request may have taken effect"
            ) from None
        except httpx.TransportError as exc:
            raise GitHubUnavailable(
                f"{operation}: the connection to GitHub failed ({type(exc).__name__}: "
                f"{_redact(str(exc), token)}); the request may have taken effect"
            ) from None
        log.debug("%s %s -> %s", method, path, response.status_code)
        self._report_rate_limit(response)
        return response

    def _report_rate_limit(self, response: httpx.Response) -> None:
        # A 401's quota headers are the anonymous caller's, not the credential's; the App
        # JWT's token exchange reports the App's own quota, not the installation's.
        if (
            self._on_rate_limit is None
            or response.status_code == 401
            or response.url.path.endswith("/access_tokens")
        ):
            return
        info = parse_rate_limit(response.headers)
        if info is None:
            return
        try:
            self._on_rate_limit(info)
        except Exception:
            # The answer must still reach the caller: a registration may have been made.
            log.warning("on_rate_limit callback failed", exc_info=True)

    def _exchange_jwt(self, credentials: AppCredentials, app_jwt: str) -> InstallationToken:
        operation = "access-token"
        installation = credentials.installation_id
        response = self._send(
            "POST", f"/app/installations/{installation}/access_tokens", operation, app_jwt
        )
        if response.status_code == 404:
            raise NotFound(
                f"{operation}: GitHub App {credentials.app_id} has no installation "
                f"{installation}; check github_app_installation_id in the Secret",
                404,
            )
        if response.status_code == 401:
            self._raise(response, operation, None, app_jwt)
        self._expect(response, 201, operation, None)
        return parse_installation_token(_json(response, operation), self._clock())

    # Errors.

    def _expect(
        self,
        response: httpx.Response,
        status: int,
        operation: str,
        scope: GitHubScope | None,
        what: str | None = None,
    ) -> None:
        if response.status_code != status:
            self._raise(response, operation, scope, None, what)

    def _raise(
        self,
        response: httpx.Response,
        operation: str,
        scope: GitHubScope | None,
        token: str | None,
        what: str | None = None,
    ) -> None:
        status = response.status_code
        message = _redact(_message(response), token)
        if status == 401:
            keys = (
                "github_token"
                if isinstance(self.credentials, PatCredentials)
                else "github_app_id, github_app_installation_id and github_app_private_key"
            )
            raise Unauthorized(
                f"{operation}: GitHub rejected {self.credentials.describe()} ({message}); "
                f"check {keys} in the Secret",
                401,
            )
        if is_rate_limited(status, response.headers, message):
            retry_after = retry_after_seconds(response.headers, self._clock())
            raise RateLimited(
                f"{operation}: GitHub's rate limit refused the call ({message}); "
                f"retry in {retry_after:.0f}s",
                retry_after,
                status,
            )
        if status >= 500:
            raise ServerError(f"{operation}: GitHub answered {status} ({message})", status)
        if status == 404:
            target = what or str(scope or "the resource")
            raise NotFound(
                f"{operation}: GitHub found no {target} ({message}); check githubConfigUrl "
                "and that the credential may manage its runners",
                404,
            )
        if status == 409:
            raise Conflict(f"{operation}: {message}", 409)
        raise GitHubError(f"{operation}: GitHub answered {status} ({message})", status)


def _json(response: httpx.Response, operation: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise InvalidGitHubResponse(
            f"GitHub's answer to {operation} ({response.status_code}) is not JSON", "body"
        ) from None


def _message(response: httpx.Response) -> str:
    """GitHub's error message, or the start of a non-JSON body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text: str = body["message"]
    else:
        text = response.text or response.reason_phrase
    return text[:MAX_MESSAGE_CHARS]


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text
