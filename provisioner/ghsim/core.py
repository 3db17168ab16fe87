"""The simulator without HTTP: one request in, GitHub's answer (or a fault) out.

Order per GitHub request: the edge (User-Agent, X-GitHub-Api-Version, unknown paths),
authentication (a revoked credential is refused there), primary rate limit, throttles (every
credential's, then this one's), points per endpoint, concurrency, latency (the knob's plus
the credential's), injected error, generate-jitconfig rate, then the handler with any slow or
dropped answer around it. Every answer carries x-ratelimit-* headers and a request id.

GitHub routes answer at the root (api.github.com's form) and under ``/api/v3`` (GitHub
Enterprise Server's); the ``/_sim/`` admin routes only at the root.
"""

from __future__ import annotations

import importlib
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

from provisioner.ghsim.auth import Authenticator, AuthFailed, Caller
from provisioner.ghsim.config import SimulatorConfig
from provisioner.ghsim.counters import Counters
from provisioner.ghsim.credentials import NO_RULES, CredentialRules, CredentialRulesStore
from provisioner.ghsim.edge import (
    body_refusal,
    edge_refusal,
    parse_body,
    request_id,
    split_ghes_prefix,
)
from provisioner.ghsim.limits import (
    PrimaryDecision,
    PrimaryLimiter,
    SecondaryLimiter,
    SlidingWindows,
)
from provisioner.ghsim.registry import RunnerRegistry
from provisioner.ghsim.routing import Request, Response, Route, Router, error

# Modules whose install(simulator) adds routes; a new endpoint family adds its module here.
ROUTE_MODULES = [
    "provisioner.ghsim.admin_api",
    "provisioner.ghsim.apps_api",
    "provisioner.ghsim.jobs.routes",
    "provisioner.ghsim.runners_api",
]

RATE_LIMIT_DOCS = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
ANONYMOUS_LIMIT = 60
# The route resource whose reported resource is the registration_resource knob.
REGISTRATION_RESOURCE = "actions_runner_registration"
ADMIN_PREFIX = "/_sim/"


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
        # Runner registrations per scope (repos/o/r, orgs/o, enterprises/e), GitHub's cap.
        self.registrations = SlidingWindows()
        self.credential_rules = CredentialRulesStore()
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
        """Back to the start: the initial knobs, no runners, tokens, rules, windows or counts."""
        self.config = self.initial_config
        self.registry.clear()
        self.auth.clear()
        self.primary.clear()
        self.secondary.clear()
        self.registrations.clear()
        self.credential_rules.clear()
        self.counters.clear()
        for hook in self._reset_hooks:
            hook()
        self.wake_sleepers()

    def resource_of(self, route: Route) -> str:
        if route.resource == REGISTRATION_RESOURCE:
            return self.config.registration_resource
        return route.resource

    def limit_of(self, resource: str, rules: CredentialRules = NO_RULES) -> int:
        if resource == REGISTRATION_RESOURCE:
            return self.config.registration_rate_limit
        return rules.rate_limit or self.config.rate_limit

    def sleep(self, seconds: float) -> None:
        """Sleep in the request's thread; a reset or stop cuts it short."""
        if seconds > 0:
            self._wake.wait(seconds)

    def wake_sleepers(self) -> None:
        woken, self._wake = self._wake, threading.Event()
        woken.set()

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Outcome:
        outcome = self._route(method, urlsplit(target), headers, body)
        if outcome.response is not None:
            outcome.response.headers["x-github-request-id"] = request_id()
        return outcome

    def _route(
        self, method: str, url: SplitResult, headers: dict[str, str], body: bytes
    ) -> Outcome:
        if url.path.startswith(ADMIN_PREFIX):
            return Outcome(self._admin(method, url, headers, body))
        prefix, path = split_ghes_prefix(url.path)
        matched = None if path.startswith(ADMIN_PREFIX) else self.router.match(method, path)
        key = f"{method} {matched[0].template}" if matched else "unmatched"
        refusal = edge_refusal(headers)
        if refusal is not None:
            self.counters.record(key, refusal.status)
            return Outcome(_with_limits(refusal, self._current_budget(headers, time.time())))
        if matched is None:
            not_found = self._not_found(headers)
            self.counters.record(key, not_found.status)
            return Outcome(not_found)
        route, params = matched
        query = dict(parse_qsl(url.query))
        request = Request(
            method, path, route.template, params, query, headers, parse_body(body), prefix=prefix
        )
        self.counters.enter()
        try:
            outcome = self._github_request(route, request)
        finally:
            self.counters.leave()
        credential = request.caller.key if request.caller else "anonymous"
        status = outcome.response.status if outcome.response else "dropped"
        self.counters.record(key, status, credential)
        return outcome

    def _admin(
        self, method: str, url: SplitResult, headers: dict[str, str], body: bytes
    ) -> Response:
        matched = self.router.match(method, url.path)
        if matched is None:
            return error(404, "Not Found")
        route, params = matched
        query = dict(parse_qsl(url.query))
        parsed = parse_body(body)
        request = Request(method, url.path, route.template, params, query, headers, parsed)
        return _json_or_400(route, request, self)

    def _current_budget(self, headers: dict[str, str], now: float) -> PrimaryDecision:
        """The caller's core budget without spending it; the anonymous one for a stranger."""
        try:
            caller = self.auth.caller(headers.get("authorization"), self.config, now)
        except AuthFailed:
            return self.primary.peek("anonymous", "core", ANONYMOUS_LIMIT, 3600, now)
        rules = self.credential_rules.get(caller.key)
        limit = self.limit_of("core", rules)
        return self.primary.peek(caller.key, "core", limit, self.config.rate_limit_window_s, now)

    def _not_found(self, headers: dict[str, str]) -> Response:
        """An unknown path: 404, after GitHub's credential check and from the caller's budget."""
        now = time.time()
        if not headers.get("authorization"):
            anonymous = self.primary.take("anonymous", "core", ANONYMOUS_LIMIT, 3600, now)
            return _with_limits(error(404, "Not Found"), anonymous)
        try:
            caller = self.auth.caller(headers.get("authorization"), self.config, now)
            rules = self.credential_rules.get(caller.key)
            if rules.revoked:
                raise AuthFailed("Bad credentials")
        except AuthFailed as exc:
            anonymous = self.primary.take("anonymous", "core", ANONYMOUS_LIMIT, 3600, now)
            return _with_limits(error(401, str(exc)), anonymous)
        limit = self.limit_of("core", rules)
        window_s = self.config.rate_limit_window_s
        decision = self.primary.take(caller.key, "core", limit, window_s, now)
        if not decision.allowed:
            return self._primary_refusal(caller, decision)
        return _with_limits(error(404, "Not Found"), decision)

    def _github_request(self, route: Route, request: Request) -> Outcome:
        config = self.config
        delay_s = config.latency().sample_ms(self.rng) / 1000
        now = time.time()
        try:
            caller = self.auth.caller(request.headers.get("authorization"), config, now)
            request.caller = caller
            if caller.kind == "app" and not route.app_jwt:
                # An App JWT speaks for the App itself; the API wants an installation token.
                raise AuthFailed("A JSON web token cannot be used for this endpoint")
            rules = self.credential_rules.get(_rules_key(route, request, caller))
            if rules.revoked:
                raise AuthFailed("Bad credentials")
        except AuthFailed as exc:
            self.sleep(delay_s)
            anonymous = self.primary.take("anonymous", "core", ANONYMOUS_LIMIT, 3600, now)
            return Outcome(_with_limits(error(401, str(exc), route.docs_url), anonymous))
        resource = self.resource_of(route)
        spend = self.primary.take if route.counted else self.primary.peek
        decision = spend(
            caller.key, resource, self.limit_of(resource, rules), config.rate_limit_window_s, now
        )
        if not decision.allowed:
            return Outcome(self._primary_refusal(caller, decision))
        refusal = self._secondary_refusal(route, request, caller, rules, now)
        if refusal is not None:
            self.counters.event("secondary_rate_limited")
            return Outcome(_with_limits(refusal, decision))
        if not self.secondary.enter(caller.key, config.secondary_max_concurrent):
            self.counters.event("secondary_rate_limited")
            refusal = _secondary_limited(config.secondary_status, config.secondary_retry_after_s)
            return Outcome(_with_limits(refusal, decision))
        try:
            # The delay runs inside the concurrency slot: a slow GitHub holds requests open.
            self.sleep(delay_s + rules.latency_ms / 1000)
            return self._limited_request(route, request, caller, config, decision)
        finally:
            self.secondary.leave(caller.key)

    def _primary_refusal(self, caller: Caller, decision: PrimaryDecision) -> Response:
        self.counters.event("primary_rate_limited")
        message = f"API rate limit exceeded for {caller.subject}."
        refusal = error(self.config.rate_limit_status, message, RATE_LIMIT_DOCS)
        return _with_limits(refusal, decision)

    def _secondary_refusal(
        self, route: Route, request: Request, caller: Caller, rules: CredentialRules, now: float
    ) -> Response | None:
        """A throttle (every credential's, then this one's) or the endpoint's points."""
        config = self.config
        if now < config.throttle_until:
            wait = max(1, math.ceil(config.throttle_until - now))
            return _secondary_limited(config.secondary_status, wait)
        throttle = rules.throttle
        if throttle is not None and throttle.hits(route.endpoint, now):
            return _secondary_limited(throttle.status, throttle.retry_after_s)
        if route.counted:
            endpoint = f"{request.method} {route.template}"
            wait_s = self.secondary.take_points(
                caller.key, endpoint, request.method, config.secondary_points_per_minute, now
            )
            if wait_s:
                return _secondary_limited(config.secondary_status, max(1, math.ceil(wait_s)))
        return None

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
                refusal = _secondary_limited(config.secondary_status, max(1, math.ceil(wait)))
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


SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)


def _secondary_limited(status: int, retry_after: int) -> Response:
    refusal = error(status, SECONDARY_LIMIT_MESSAGE, RATE_LIMIT_DOCS)
    refusal.headers["retry-after"] = str(retry_after)
    return refusal


def _rules_key(route: Route, request: Request, caller: Caller) -> str:
    """Whose rules apply: the caller's, or for a token exchange the installation's."""
    if route.endpoint == "access-token":
        return f"installation:{request.params['installation_id']}"
    return caller.key


def _json_or_400(route: Route, request: Request, simulator: Simulator) -> Response:
    return body_refusal(request.body, route.docs_url) or route.handler(simulator, request)


def _with_limits(response: Response, decision: PrimaryDecision) -> Response:
    response.headers.update(decision.headers())
    return response
