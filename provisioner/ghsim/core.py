"""The simulator without HTTP: one request in, GitHub's answer (or a fault) out.

Order per GitHub request: authentication, primary rate limit, secondary concurrency limit,
latency, injected error, generate-jitconfig rate, then the handler with any slow or dropped
answer around it.
"""

from __future__ import annotations

import importlib
import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from provisioner.ghsim.auth import Authenticator, AuthFailed, Caller
from provisioner.ghsim.config import SimulatorConfig
from provisioner.ghsim.counters import Counters
from provisioner.ghsim.limits import PrimaryDecision, PrimaryLimiter, SecondaryLimiter
from provisioner.ghsim.registry import RunnerRegistry
from provisioner.ghsim.routing import Request, Response, Route, Router, error

# Modules whose install(simulator) adds routes; a new endpoint family adds its module here.
ROUTE_MODULES = [
    "provisioner.ghsim.admin_api",
    "provisioner.ghsim.apps_api",
    "provisioner.ghsim.jobs",
    "provisioner.ghsim.runners_api",
]

RATE_LIMIT_DOCS = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
ANONYMOUS_LIMIT = 60


@dataclass(frozen=True)
class Outcome:
    """The answer to send, or None: close the connection without answering."""

    response: Response | None


class Simulator:
    def __init__(self, config: SimulatorConfig, rng: random.Random | None = None) -> None:
        self.initial_config = config
        self.config = config
        self.rng = rng or random.Random()
        self.router = Router()
        self.registry = RunnerRegistry()
        self.auth = Authenticator()
        self.primary = PrimaryLimiter()
        self.secondary = SecondaryLimiter()
        self.counters = Counters()
        self._wake = threading.Event()
        self._reset_hooks: list[Callable[[], None]] = []
        # State of route modules beyond runners (e.g. workflow jobs), keyed by module.
        self.extensions: dict[str, Any] = {}
        for module in ROUTE_MODULES:
            importlib.import_module(module).install(self)

    def on_reset(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on every reset, so a route module can forget its state too."""
        self._reset_hooks.append(hook)

    def reset(self) -> None:
        """Back to the start: the initial knobs, no runners, tokens, windows or counts."""
        self.config = self.initial_config
        self.registry.clear()
        self.auth.clear()
        self.primary.clear()
        self.secondary.clear()
        self.counters.clear()
        for hook in self._reset_hooks:
            hook()
        self.wake_sleepers()

    def limit_of(self, resource: str) -> int:
        if resource == "actions_runner_registration":
            return self.config.registration_rate_limit
        return self.config.rate_limit

    def sleep(self, seconds: float) -> None:
        """Sleep in the request's thread; a reset or stop cuts it short."""
        if seconds > 0:
            self._wake.wait(seconds)

    def wake_sleepers(self) -> None:
        woken, self._wake = self._wake, threading.Event()
        woken.set()

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Outcome:
        url = urlsplit(target)
        matched = self.router.match(method, url.path)
        if matched is None:
            self.counters.record("unmatched", 404)
            return Outcome(error(404, "Not Found"))
        route, params = matched
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = _BAD_JSON
        request = Request(
            method, url.path, route.template, params, dict(parse_qsl(url.query)), headers, parsed
        )
        if not route.resource:
            return Outcome(_json_or_400(route, request, self))
        self.counters.enter()
        try:
            outcome = self._github_request(route, request)
        finally:
            self.counters.leave()
        key = f"{method} {route.template}"
        self.counters.record(key, outcome.response.status if outcome.response else "dropped")
        return outcome

    def _github_request(self, route: Route, request: Request) -> Outcome:
        config = self.config
        delay_s = config.latency().sample_ms(self.rng) / 1000
        now = time.time()
        try:
            caller = self.auth.caller(request.headers.get("authorization"), config, now)
            if caller.kind == "app" and not route.app_jwt:
                # An App JWT speaks for the App itself; the API wants an installation token.
                raise AuthFailed("A JSON web token cannot be used for this endpoint")
        except AuthFailed as exc:
            self.sleep(delay_s)
            anonymous = self.primary.take("anonymous", route.resource, ANONYMOUS_LIMIT, 3600, now)
            return Outcome(_with_limits(error(401, str(exc), route.docs_url), anonymous))
        request.caller = caller
        spend = self.primary.take if route.counted else self.primary.peek
        decision = spend(
            caller.key,
            route.resource,
            self.limit_of(route.resource),
            config.rate_limit_window_s,
            now,
        )
        if not decision.allowed:
            self.counters.event("primary_rate_limited")
            message = f"API rate limit exceeded for {caller.subject}."
            refusal = error(config.rate_limit_status, message, RATE_LIMIT_DOCS)
            return Outcome(_with_limits(refusal, decision))
        if now < config.throttle_until:
            self.counters.event("secondary_rate_limited")
            wait = max(1, math.ceil(config.throttle_until - now))
            return Outcome(_with_limits(self._secondary_refusal(config, wait), decision))
        if not self.secondary.enter(caller.key, config.secondary_max_concurrent):
            self.counters.event("secondary_rate_limited")
            refusal = self._secondary_refusal(config, config.secondary_retry_after_s)
            return Outcome(_with_limits(refusal, decision))
        try:
            # The delay runs inside the concurrency slot: a slow GitHub holds requests open.
            self.sleep(delay_s)
            return self._limited_request(route, request, caller, config, decision)
        finally:
            self.secondary.leave(caller.key)

    def _limited_request(
        self,
        route: Route,
        request: Request,
        caller: Caller,
        config: SimulatorConfig,
        decision: PrimaryDecision,
    ) -> Outcome:
        if self._hits(config.error_endpoint, route, config.error_rate):
            self.counters.event("errors_injected")
            return Outcome(_with_limits(error(config.error_status, "Server Error"), decision))
        if route.endpoint == "generate-jitconfig":
            wait = self.secondary.take_jitconfig(
                caller.key, config.secondary_jitconfig_per_minute, time.time()
            )
            if wait:
                self.counters.event("secondary_rate_limited")
                refusal = self._secondary_refusal(config, max(1, math.ceil(wait)))
                return Outcome(_with_limits(refusal, decision))
        return self._answer(route, request, config, decision)

    def _answer(
        self, route: Route, request: Request, config: SimulatorConfig, decision: PrimaryDecision
    ) -> Outcome:
        fault_hits = route.endpoint == config.fault_endpoint or config.fault_endpoint == "all"
        roll = self.rng.random() if fault_hits else 1.0
        drop = roll < config.drop_rate
        slow = not drop and roll < config.drop_rate + config.slow_rate
        if (drop or slow) and not config.faults_take_effect:
            self.counters.event("dropped" if drop else "slow")
            if drop:
                return Outcome(None)
            self.sleep(config.slow_ms / 1000)
            return Outcome(_with_limits(error(504, "We couldn't respond in time"), decision))
        response = _with_limits(_json_or_400(route, request, self), decision)
        if drop:
            self.counters.event("dropped")
            return Outcome(None)
        if slow:
            self.counters.event("slow")
            self.sleep(config.slow_ms / 1000)
        return Outcome(response)

    def _hits(self, endpoint: str, route: Route, rate: float) -> bool:
        return (
            rate > 0
            and (endpoint == "all" or endpoint == route.endpoint)
            and self.rng.random() < rate
        )

    def _secondary_refusal(self, config: SimulatorConfig, retry_after: int) -> Response:
        refusal = error(
            config.secondary_status,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you "
            "try again.",
            RATE_LIMIT_DOCS,
        )
        refusal.headers["retry-after"] = str(retry_after)
        return refusal


_BAD_JSON = object()


def _json_or_400(route: Route, request: Request, simulator: Simulator) -> Response:
    if request.body is _BAD_JSON:
        return error(400, "Problems parsing JSON", route.docs_url)
    return route.handler(simulator, request)


def _with_limits(response: Response, decision: PrimaryDecision) -> Response:
    response.headers.update(decision.headers())
    return response
