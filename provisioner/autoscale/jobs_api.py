"""Lists a repository's queued and in-progress jobs through GitHub's REST API:
``GET /repos/{owner}/{repo}/actions/runs?status=...`` and
``GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from provisioner.autoscale.demand import ACTIVE
from provisioner.autoscale.events import InvalidEvent, JobEvent, parse_job
from provisioner.github.auth import (
    AppCredentials,
    Credentials,
    InstallationTokenProvider,
    parse_installation_token,
)

PER_PAGE = 100
API_VERSION = "2022-11-28"


class JobListingFailed(Exception):
    """A listing did not complete; the message says which call and why (never a token)."""


class JobsClient:
    def __init__(
        self, api_url: str, timeout: float = 10.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "runner-provisioner-autoscaler",
            },
        )
        self._lock = threading.Lock()
        self._providers: dict[tuple[int, int], InstallationTokenProvider] = {}

    def close(self) -> None:
        self._http.close()

    def active_jobs(self, repository: str, credentials: Credentials) -> list[JobEvent]:
        """Every queued or in-progress job of ``repository`` (owner/repo)."""
        token = self._token(credentials)
        run_ids: set[int] = set()
        for status in ("queued", "in_progress"):
            for run in self._pages(
                f"/repos/{repository}/actions/runs", "workflow_runs", token, {"status": status}
            ):
                if isinstance(run, dict) and isinstance(run.get("id"), int):
                    run_ids.add(run["id"])
        jobs: list[JobEvent] = []
        for run_id in sorted(run_ids):
            path = f"/repos/{repository}/actions/runs/{run_id}/jobs"
            for raw in self._pages(path, "jobs", token, {"filter": "latest"}):
                try:
                    job = parse_job(raw, repository)
                except InvalidEvent as exc:
                    raise JobListingFailed(f"GET {path}: {exc}") from None
                if job.status in ACTIVE:
                    jobs.append(job)
        return jobs

    def _pages(self, path: str, key: str, token: str, params: dict[str, Any]) -> Iterator[Any]:
        page = 1
        while True:
            try:
                response = self._http.get(
                    path,
                    params={**params, "per_page": PER_PAGE, "page": page},
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.HTTPError as exc:
                raise JobListingFailed(f"GET {path}: {type(exc).__name__}") from None
            if response.status_code != 200:
                raise JobListingFailed(f"GET {path}: GitHub answered {response.status_code}")
            try:
                items = response.json()[key]
            except (ValueError, KeyError, TypeError):
                raise JobListingFailed(f"GET {path}: the answer has no {key} list") from None
            if not isinstance(items, list):
                raise JobListingFailed(f"GET {path}: {key} is not a list")
            yield from items
            if len(items) < PER_PAGE:
                return
            page += 1

    def _token(self, credentials: Credentials) -> str:
        if not isinstance(credentials, AppCredentials):
            return credentials.token
        key = (credentials.app_id, credentials.installation_id)
        with self._lock:
            provider = self._providers.get(key)
            if provider is None:
                provider = InstallationTokenProvider(
                    credentials, lambda jwt: self._exchange(credentials, jwt), self._clock
                )
                self._providers[key] = provider
        return provider.token()

    def _exchange(self, credentials: AppCredentials, app_jwt: str) -> Any:
        path = f"/app/installations/{credentials.installation_id}/access_tokens"
        try:
            response = self._http.post(path, headers={"Authorization": f"Bearer {app_jwt}"})
        except httpx.HTTPError as exc:
            raise JobListingFailed(f"POST {path}: {type(exc).__name__}") from None
        if response.status_code != 201:
            raise JobListingFailed(f"POST {path}: GitHub answered {response.status_code}")
        return parse_installation_token(response.json(), self._clock())
