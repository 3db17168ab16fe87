"""The simulator's knobs: one validated model shared by the CLI, the admin API and tests.

Field names are the CLI flags (``latency_ms`` is ``--latency-ms``) and the keys of
``POST /_sim/config``, so one error message format names the knob everywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_PAT = "ghsim-token"

# Endpoint names a fault or error knob can target; "all" means every GitHub endpoint.
ENDPOINT_NAMES = (
    "all",
    "generate-jitconfig",
    "list-runners",
    "get-runner",
    "delete-runner",
    "registration-token",
    "remove-token",
    "access-token",
)

# Knobs fixed at start: the credentials the simulator trusts.
STARTUP_ONLY = frozenset({"pats", "app_id", "app_public_key_pem", "app_installation_ids"})

# GitHub.com's published limits (docs.github.com, "Rate limits for the REST API" and "Actions
# limits"): 5,000 requests an hour for a token, 900 points a minute per endpoint, 100 concurrent
# requests, 1,500 runner registrations per 5 minutes per scope, 10,000 runners per group.
GITHUB_COM_LIMITS: dict[str, object] = {
    "rate_limit": 5000,
    "rate_limit_window_s": 3600.0,
    "registration_resource": "core",
    "secondary_points_per_minute": 900,
    "secondary_max_concurrent": 100,
    "registrations_per_window": 1500,
    "registration_window_s": 300.0,
    "runners_per_group": 10_000,
}
PROFILE_NAMES = ("default", "github.com")


@dataclass(frozen=True)
class LatencyDistribution:
    """Per-request delay in milliseconds: fixed, uniform(min, max) or normal(mean, sd)."""

    kind: Literal["fixed", "uniform", "normal"]
    a: float
    b: float = 0.0

    def sample_ms(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        return max(0.0, rng.gauss(self.a, self.b))


LATENCY_FORMATS = "fixed:MS, uniform:MIN_MS:MAX_MS or normal:MEAN_MS:SD_MS"


def parse_latency_distribution(text: str) -> LatencyDistribution:
    kind, _, rest = text.partition(":")
    arity = {"fixed": 1, "uniform": 2, "normal": 2}.get(kind)
    if arity is None:
        raise ValueError(f"unknown distribution {kind!r}; use {LATENCY_FORMATS}")
    try:
        values = [float(part) for part in rest.split(":")] if rest else []
    except ValueError:
        raise ValueError(f"numbers expected after {kind}:; use {LATENCY_FORMATS}") from None
    if len(values) != arity:
        raise ValueError(f"{kind} takes {arity} number(s); use {LATENCY_FORMATS}")
    if any(v < 0 for v in values):
        raise ValueError("milliseconds must be >= 0")
    if kind == "uniform" and values[0] > values[1]:
        raise ValueError("uniform:MIN:MAX needs MIN <= MAX")
    return LatencyDistribution(kind, *values)  # type: ignore[arg-type]


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    # Credentials.
    pats: tuple[str, ...] = Field(
        (DEFAULT_PAT,), description="Personal access tokens the simulator accepts (repeatable)."
    )
    app_id: int | None = Field(
        None, ge=1, description="GitHub App id whose JWTs are accepted (iss claim)."
    )
    app_public_key_pem: str | None = Field(
        None, description="PEM public key that verifies the App's RS256 JWTs."
    )
    app_installation_ids: tuple[int, ...] = Field(
        (1,), description="Installation ids of the App that may get access tokens (repeatable)."
    )
    installation_token_ttl_s: float = Field(
        3600.0, gt=0, le=86_400, description="Seconds an installation access token stays valid."
    )
    runner_group_ids: tuple[int, ...] = Field(
        (1,), description="Runner group ids that exist; generate-jitconfig 404s on others."
    )

    # Latency.
    latency_ms: float = Field(
        0.0, ge=0, le=600_000, description="Fixed delay added to every GitHub API answer (ms)."
    )
    latency_distribution: str | None = Field(
        None,
        description=f"Delay distribution instead of --latency-ms: {LATENCY_FORMATS}.",
    )

    # Injected errors and faults.
    error_rate: float = Field(
        0.0, ge=0, le=1, description="Fraction of requests answered with --error-status."
    )
    error_status: int = Field(500, ge=500, le=599, description="Status of injected errors.")
    error_endpoint: str = Field(
        "all", description="Endpoint injected errors hit: " + ", ".join(ENDPOINT_NAMES) + "."
    )
    slow_rate: float = Field(
        0.0, ge=0, le=1, description="Fraction of requests answered only after --slow-ms."
    )
    slow_ms: float = Field(
        30_000.0, ge=0, le=600_000, description="Delay of a slow answer (ms), past client timeouts."
    )
    drop_rate: float = Field(
        0.0, ge=0, le=1, description="Fraction of requests whose connection is closed unanswered."
    )
    fault_endpoint: str = Field(
        "all", description="Endpoint slow and dropped answers hit (same names as --error-endpoint)."
    )
    faults_take_effect: bool = Field(
        True,
        description="A slow or dropped request still takes effect (a timed-out "
        "generate-jitconfig may have registered the runner), as on GitHub; off: it has none, "
        "and a slow one is answered 504.",
    )

    # Primary rate limit, per credential and resource.
    rate_limit: int = Field(
        5000, ge=1, le=10_000_000, description="Requests per window per credential (core)."
    )
    registration_rate_limit: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Requests per window per credential for runner registration "
        "(generate-jitconfig, registration-token, remove-token) when --registration-resource "
        "is actions_runner_registration.",
    )
    rate_limit_window_s: float = Field(
        3600.0, gt=0, le=86_400, description="Length of the primary rate-limit window (s)."
    )
    rate_limit_status: Literal[403, 429] = Field(
        403, description="Status of a primary rate-limit refusal (403 or 429)."
    )
    registration_resource: Literal["core", "actions_runner_registration"] = Field(
        "core",
        description="Rate-limit resource of generate-jitconfig, registration-token and "
        "remove-token: core (what GitHub reports) or actions_runner_registration (its own "
        "budget of --registration-rate-limit).",
    )

    # Secondary rate limits (0 = off).
    secondary_max_concurrent: int = Field(
        0, ge=0, le=100_000, description="Concurrent requests per credential (0 = unlimited)."
    )
    secondary_jitconfig_per_minute: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="generate-jitconfig calls per minute per credential (0 = unlimited).",
    )
    secondary_points_per_minute: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="Points a minute per endpoint per credential (GET 1, POST/PATCH/PUT/DELETE "
        "5; 0 = unlimited).",
    )
    secondary_status: Literal[403, 429] = Field(
        429, description="Status of a secondary rate-limit refusal (403 or 429)."
    )
    secondary_retry_after_s: int = Field(
        1, ge=0, le=3600, description="retry-after (s) when the concurrency limit refuses."
    )
    throttle_until: float = Field(
        0.0,
        ge=0,
        description="Until this wall-clock time (epoch seconds; 0 = off) every GitHub request "
        "is refused as by a secondary limit, with retry-after counting down to it: a "
        "throttling storm, for chaos tests.",
    )

    # Actions limits (0 = off).
    registrations_per_window: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="Runner registrations (generate-jitconfig) per --registration-window-s per "
        "repository, organization or enterprise (0 = unlimited); past it 429 with retry-after.",
    )
    registration_window_s: float = Field(
        300.0, gt=0, le=86_400, description="Window of --registrations-per-window (s)."
    )
    runners_per_group: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="Runners a runner group holds per scope (0 = unlimited); past it "
        "generate-jitconfig answers 422.",
    )

    profile: Literal["default", "github.com"] = Field(
        "default",
        description="Preset of limits: github.com sets GitHub.com's published limits (5,000 "
        "requests/h per credential, 900 points/min per endpoint, 100 concurrent requests, 1,500 "
        "registrations per 5 min per scope, 10,000 runners per group); knobs given with it win.",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("profile") in PROFILE_NAMES:
            return {**profile_knobs(str(data["profile"])), **data}
        return data

    @field_validator("latency_distribution")
    @classmethod
    def _distribution(cls, value: str | None) -> str | None:
        if value:
            parse_latency_distribution(value)
        return value or None

    @field_validator("app_public_key_pem")
    @classmethod
    def _public_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (value is None) != (info.data.get("app_id") is None):
            raise ValueError("an App needs both --app-id and --app-public-key")
        if value is not None:
            # Imported here: loading cryptography would slow every `provisioner --help`.
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            try:
                key = serialization.load_pem_public_key(value.encode())
            except ValueError:
                raise ValueError("not a PEM public key") from None
            if not isinstance(key, rsa.RSAPublicKey):
                raise ValueError("an RSA public key is needed (App JWTs are RS256)")
        return value

    @field_validator("error_endpoint", "fault_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value not in ENDPOINT_NAMES:
            raise ValueError("use one of " + ", ".join(ENDPOINT_NAMES))
        return value

    @field_validator("pats")
    @classmethod
    def _non_empty_tokens(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not token.strip() for token in value):
            raise ValueError("tokens must not be empty")
        return value

    def latency(self) -> LatencyDistribution:
        if self.latency_distribution:
            return parse_latency_distribution(self.latency_distribution)
        return LatencyDistribution("fixed", self.latency_ms)

    def with_knobs(self, knobs: dict[str, object]) -> SimulatorConfig:
        """A validated copy with ``knobs`` changed; KnobError names the first bad one."""
        fixed = sorted(STARTUP_ONLY & knobs.keys())
        if fixed:
            raise KnobError(fixed[0], "is fixed at start")
        # A profile named now replaces the current values of its knobs, unless also given.
        preset = profile_knobs(str(knobs["profile"])) if "profile" in knobs else {}
        return build_config({**self.model_dump(), **preset, **knobs})


def profile_knobs(profile: str) -> dict[str, object]:
    """The knob values a profile sets; "default" sets the same knobs back to their defaults."""
    if profile == "github.com":
        return dict(GITHUB_COM_LIMITS)
    if profile == "default":
        return {knob: SimulatorConfig.model_fields[knob].default for knob in GITHUB_COM_LIMITS}
    return {}


class KnobError(ValueError):
    """A knob was given a value it does not accept."""

    def __init__(self, knob: str, problem: str):
        super().__init__(f"{knob}: {problem}")
        self.knob = knob
        self.problem = problem

    def flag_message(self) -> str:
        return f"{knob_flag(self.knob)}: {self.problem}"


def knob_flag(knob: str) -> str:
    return "--" + knob.replace("_", "-")


def build_config(values: dict[str, object]) -> SimulatorConfig:
    """SimulatorConfig from raw values; KnobError names the first bad knob."""
    try:
        return SimulatorConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc") or ("config",)
        knob = str(loc[0])
        message = first["msg"].removeprefix("Value error, ")
        raise KnobError(knob, f"{message} (got {first.get('input')!r})") from None
