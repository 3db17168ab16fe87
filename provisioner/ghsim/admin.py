"""Client of the simulator's ``/_sim/`` admin endpoints, for tests, the demo and benchmarks."""

from __future__ import annotations

from typing import Any, cast

import httpx


class SimulatorAdminError(RuntimeError):
    """The simulator refused an admin call; the message is its answer."""


class SimulatorAdmin:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/") + "/_sim", timeout=timeout)

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise SimulatorAdminError(
                f"{method} /_sim{path}: {response.status_code} {response.json().get('message')}"
            )
        answer: dict[str, Any] = response.json()
        return answer

    def registrations(self) -> list[dict[str, Any]]:
        """Every runner registration: id, name, scope, status (online/offline), busy, labels."""
        return cast(list[dict[str, Any]], self._call("GET", "/registrations")["registrations"])

    def set_runner_state(self, runner: int | str, state: str) -> dict[str, Any] | None:
        """Play the runner: "online", "busy", "idle", "offline" or "finished" (deregisters it)."""
        answer = self._call("POST", f"/runners/{runner}/state", {"state": state})
        return cast(dict[str, Any] | None, answer["runner"])

    def counters(self) -> dict[str, Any]:
        return self._call("GET", "/counters")

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs at run time, e.g. ``configure(latency_ms=300, error_rate=0.1)``."""
        return self._call("POST", "/config", knobs)

    # One credential's faults and limits. A credential is a token (a PAT or an installation
    # token; sent to the simulator only, which keeps its non-secret key) or an installation id.

    def set_credential_rules(
        self, *, token: str | None = None, installation_id: int | None = None, **rules: Any
    ) -> dict[str, Any]:
        """Change rules of one credential: ``revoked``, ``latency_ms``, ``throttle`` (a dict of
        ``status``, ``retry_after_s``, ``endpoint``, ``for_s``) and ``rate_limit``."""
        who = {"token": token} if token is not None else {"installation_id": installation_id}
        return self._call("POST", "/credentials", {**who, **rules})

    def throttle_credential(
        self,
        *,
        token: str | None = None,
        installation_id: int | None = None,
        status: int = 429,
        retry_after_s: int = 60,
        endpoint: str = "all",
        for_s: float | None = None,
    ) -> dict[str, Any]:
        """Refuse its calls (on ``endpoint`` only, if named) as a secondary rate limit does,
        with ``retry-after``; for ``for_s`` seconds, else until restored."""
        throttle: dict[str, Any] = {
            "status": status,
            "retry_after_s": retry_after_s,
            "endpoint": endpoint,
        }
        if for_s is not None:
            throttle["for_s"] = for_s
        return self.set_credential_rules(
            token=token, installation_id=installation_id, throttle=throttle
        )

    def revoke_credential(
        self, *, token: str | None = None, installation_id: int | None = None
    ) -> dict[str, Any]:
        """Answer its every call 401 "Bad credentials" until restored."""
        return self.set_credential_rules(token=token, installation_id=installation_id, revoked=True)

    def slow_credential(
        self, latency_ms: float, *, token: str | None = None, installation_id: int | None = None
    ) -> dict[str, Any]:
        """Add ``latency_ms`` to its every call (on top of the latency knobs)."""
        return self.set_credential_rules(
            token=token, installation_id=installation_id, latency_ms=latency_ms
        )

    def restore_credential(
        self, *, token: str | None = None, installation_id: int | None = None
    ) -> dict[str, Any]:
        """Lift every rule of the credential."""
        return self.set_credential_rules(
            token=token,
            installation_id=installation_id,
            revoked=False,
            latency_ms=0,
            throttle=None,
            rate_limit=None,
        )

    def credential_rules(self) -> list[dict[str, Any]]:
        """Credentials with rules: ``credential`` (``pat:N``, ``installation:ID``) and rules."""
        return cast(list[dict[str, Any]], self._call("GET", "/credentials")["credentials"])

    def clear_credential_rules(self) -> None:
        self._call("DELETE", "/credentials")

    def reset(self) -> None:
        """Initial knobs, no runners, no issued tokens, fresh rate-limit windows and counters."""
        self._call("POST", "/reset")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimulatorAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
