"""Client of the simulator's ``/_sim/`` admin endpoints, for tests, the demo and benchmarks."""

from __future__ import annotations

from typing import Any

import httpx


class SimulatorAdminError(RuntimeError):
    """The simulator refused an admin call; the message is its answer."""


class SimulatorAdmin:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/") + "/_sim", timeout=timeout)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise SimulatorAdminError(
                f"{method} /_sim{path}: {response.status_code} {response.json().get('message')}"
            )
        return response.json()

    def registrations(self) -> list[dict[str, Any]]:
        """Every runner registration: id, name, scope, status (online/offline), busy, labels."""
        return self._call("GET", "/registrations")["registrations"]

    def set_runner_state(self, runner: int | str, state: str) -> dict[str, Any] | None:
        """Play the runner: "online", "busy", "idle", "offline" or "finished" (deregisters it)."""
        return self._call("POST", f"/runners/{runner}/state", {"state": state})["runner"]

    def counters(self) -> dict[str, Any]:
        return self._call("GET", "/counters")

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time, e.g. ``configure(latency_ms=300, error_rate=0.1)``."""
        return self._call("POST", "/config", knobs)

    def reset(self) -> None:
        """Initial knobs, no runners, no issued tokens, fresh rate-limit windows and counters."""
        self._call("POST", "/reset")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimulatorAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
