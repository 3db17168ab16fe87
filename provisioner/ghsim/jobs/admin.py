"""Client of the jobs admin endpoints, for tests and benchmarks."""

from __future__ import annotations

from typing import Any, cast

import httpx


class JobsAdmin:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/") + "/_sim", timeout=timeout)

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            message = response.json().get("message")
            raise RuntimeError(f"{method} /_sim{path}: {response.status_code} {message}")
        answer: dict[str, Any] = response.json()
        return answer

    def enqueue(
        self, repository: str, labels: list[str], count: int = 1, duration_s: float = 1.0
    ) -> list[int]:
        body = {
            "repository": repository,
            "labels": labels,
            "count": count,
            "duration_s": duration_s,
        }
        return cast(list[int], self._call("POST", "/jobs", body)["job_ids"])

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
