"""``/_sim/``: what tests and benchmarks use to play runners, read counts and turn knobs.

Admin routes need no credential and never count against a rate limit.
"""

from __future__ import annotations

from provisioner.ghsim.config import KnobError
from provisioner.ghsim.core import Simulator
from provisioner.ghsim.registry import RUNNER_STATES, UnknownRunner
from provisioner.ghsim.routing import Request, Response, error


def install(simulator: Simulator) -> None:
    add = simulator.router.add
    add("GET", "/_sim/registrations", _registrations, endpoint="admin", resource="")
    add("POST", "/_sim/runners/{runner}/state", _set_state, endpoint="admin", resource="")
    add("GET", "/_sim/counters", _counters, endpoint="admin", resource="")
    add("GET", "/_sim/config", _config, endpoint="admin", resource="")
    add("POST", "/_sim/config", _configure, endpoint="admin", resource="")
    add("POST", "/_sim/reset", _reset, endpoint="admin", resource="")


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


def _public(simulator: Simulator) -> dict[str, object]:
    """The knobs, without the credentials the simulator trusts."""
    return simulator.config.model_dump(exclude={"pats", "app_public_key_pem"})
