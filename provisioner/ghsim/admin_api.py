"""``/_sim/``: what tests and benchmarks use to play runners, read counts and turn knobs.

Admin routes need no credential and never count against a rate limit.
"""

from __future__ import annotations

import time

from provisioner.ghsim.auth import AuthFailed
from provisioner.ghsim.config import KnobError
from provisioner.ghsim.core import Simulator
from provisioner.ghsim.credentials import CredentialRules, RulesError
from provisioner.ghsim.registry import RUNNER_STATES, UnknownRunner
from provisioner.ghsim.routing import Request, Response, error

# The body keys that name a credential in POST /_sim/credentials; the others are its rules.
CREDENTIAL_NAMES = ("token", "installation_id")


def install(simulator: Simulator) -> None:
    add = simulator.router.add
    add("GET", "/_sim/registrations", _registrations, endpoint="admin", resource="")
    add("POST", "/_sim/runners/{runner}/state", _set_state, endpoint="admin", resource="")
    add("GET", "/_sim/counters", _counters, endpoint="admin", resource="")
    add("GET", "/_sim/config", _config, endpoint="admin", resource="")
    add("POST", "/_sim/config", _configure, endpoint="admin", resource="")
    add("POST", "/_sim/reset", _reset, endpoint="admin", resource="")
    add("GET", "/_sim/credentials", _credentials, endpoint="admin", resource="")
    add("POST", "/_sim/credentials", _set_credential_rules, endpoint="admin", resource="")
    add("DELETE", "/_sim/credentials", _clear_credential_rules, endpoint="admin", resource="")


def _registrations(simulator: Simulator, request: Request) -> Response:
    runners = sorted(simulator.registry.all(), key=lambda runner: runner.id)
    return Response(200, {"registrations": [runner.to_admin() for runner in runners]})


def _set_state(simulator: Simulator, request: Request) -> Response:
    state = request.body.get("state") if isinstance(request.body, dict) else None
    if state not in RUNNER_STATES:
        return error(422, "state must be one of " + ", ".join(RUNNER_STATES))
    try:
        runner = simulator.registry.set_state(request.params["runner"], state)
    except UnknownRunner:
        return error(404, f"no runner with id or name {request.params['runner']}")
    return Response(200, {"runner": runner.to_admin() if runner else None})


def _counters(simulator: Simulator, request: Request) -> Response:
    return Response(200, simulator.counters.snapshot())


def _config(simulator: Simulator, request: Request) -> Response:
    return Response(200, _public(simulator))


def _configure(simulator: Simulator, request: Request) -> Response:
    if not isinstance(request.body, dict):
        return error(422, 'send a JSON object of knobs, e.g. {"latency_ms": 300}')
    try:
        simulator.config = simulator.config.with_knobs(request.body)
    except KnobError as exc:
        return error(422, str(exc))
    return Response(200, _public(simulator))


def _reset(simulator: Simulator, request: Request) -> Response:
    simulator.reset()
    return Response(200, _public(simulator))


def _credentials(simulator: Simulator, request: Request) -> Response:
    rules = sorted(simulator.credential_rules.all().items())
    return Response(200, {"credentials": [_rules_view(key, r) for key, r in rules]})


def _set_credential_rules(simulator: Simulator, request: Request) -> Response:
    """Change one credential's rules: ``{"token": ...} or {"installation_id": N}`` plus any of
    ``revoked``, ``latency_ms``, ``throttle`` (with ``for_s`` instead of ``until`` if wanted)
    and ``rate_limit``; the default value (false, 0, null) lifts a rule."""
    body = request.body
    if not isinstance(body, dict):
        return error(422, 'send {"token": "..."} or {"installation_id": N} and the rules')
    key = _credential_key(simulator, body)
    if isinstance(key, Response):
        return key
    changes = {name: value for name, value in body.items() if name not in CREDENTIAL_NAMES}
    throttle = changes.get("throttle")
    if isinstance(throttle, dict) and "for_s" in throttle:
        for_s = throttle["for_s"]
        if not isinstance(for_s, int | float) or isinstance(for_s, bool) or for_s <= 0:
            return error(422, "throttle.for_s: a number of seconds > 0 is needed")
        kept = {name: value for name, value in throttle.items() if name != "for_s"}
        changes["throttle"] = {**kept, "until": time.time() + for_s}
    try:
        rules = simulator.credential_rules.update(key, changes)
    except RulesError as exc:
        return error(422, str(exc))
    return Response(200, _rules_view(key, rules))


def _clear_credential_rules(simulator: Simulator, request: Request) -> Response:
    simulator.credential_rules.clear()
    return Response(200, {"credentials": []})


def _credential_key(simulator: Simulator, body: dict[str, object]) -> str | Response:
    """The credential's non-secret key; the token itself is only looked up, never kept."""
    token, installation_id = body.get("token"), body.get("installation_id")
    if (token is None) == (installation_id is None):
        return error(422, 'name the credential with "token" or "installation_id" (one of them)')
    if token is not None:
        if not isinstance(token, str) or not token.strip():
            return error(422, "token: a non-empty string is needed")
        try:
            return simulator.auth.caller(f"Bearer {token}", simulator.config, time.time()).key
        except AuthFailed:
            return error(422, "token: not a credential the simulator accepts")
    installations = simulator.config.app_installation_ids
    if installation_id not in installations or isinstance(installation_id, bool):
        known = ", ".join(map(str, installations))
        return error(422, f"installation_id: not an installation of the App (it has {known})")
    return f"installation:{installation_id}"


def _rules_view(key: str, rules: CredentialRules) -> dict[str, object]:
    return {"credential": key, **rules.model_dump()}


def _public(simulator: Simulator) -> dict[str, object]:
    """The knobs, without the credentials the simulator trusts."""
    return simulator.config.model_dump(exclude={"pats", "app_public_key_pem"})
