"""One Settings object for every process: reconciler, workers, CLI, benchmark.

Every field is an environment variable (``PROVISIONER_<NAME>``) and a CLI flag
(``--name-with-dashes``, booleans as ``--x/--no-x``); see ``provisioner.cli.flags``.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PROVISIONER_"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", validate_default=True, frozen=True
    )

    # Creation fan-out.
    runner_creation_concurrency: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Runner creations talking to GitHub at once, across all workers.",
    )
    runner_creation_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds one runner's creation may take, retries included."
    )
    parallel_creation: bool = Field(
        True,
        description="Create runners in parallel on Celery workers; off creates them one after "
        "another in the reconciler (the ARC-like path).",
    )
    adaptive_concurrency: bool = Field(
        True,
        description="Lower the creation concurrency on throttling or timeouts and raise it "
        "again while calls succeed, within --runner-creation-concurrency; off keeps it fixed.",
    )

    # Global rate limits, shared by every worker through Redis.
    github_requests_per_second: float = Field(
        50.0, gt=0, le=100_000, description="Sustained GitHub API request rate across all workers."
    )
    github_burst: int = Field(
        100, ge=1, le=100_000, description="GitHub requests allowed at once above the rate."
    )
    kube_requests_per_second: float = Field(
        100.0, gt=0, le=100_000, description="Sustained Kubernetes write rate across all workers."
    )
    kube_burst: int = Field(
        200, ge=1, le=100_000, description="Kubernetes writes allowed at once above the rate."
    )

    # Retries.
    create_max_attempts: int = Field(
        5, ge=1, le=100, description="Attempts per runner before it is rolled back."
    )
    retry_backoff_base: float = Field(
        0.5, gt=0, le=600, description="Seconds of the first retry's backoff ceiling."
    )
    retry_backoff_max: float = Field(
        30.0, gt=0, le=3600, description="Largest backoff between two attempts, in seconds."
    )

    # Where things are.
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Redis for queue, ledger, limits."
    )
    kubeconfig: str | None = Field(
        None, description="Kubeconfig file; unset uses in-cluster config, then ~/.kube/config."
    )
    namespace: str | None = Field(
        None, description="Watch RunnerScaleSets in this namespace only; unset watches all."
    )
    github_api_url: str = Field(
        "https://api.github.com",
        description="GitHub REST API base URL (the simulator's URL for demos and tests).",
    )
    github_request_timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds one GitHub HTTP request may take."
    )

    # Operations.
    log_level: LogLevel = Field("INFO", description="Log level.")
    metrics_port: int = Field(
        9100, ge=0, le=65535, description="Port for /metrics, /livez and /readyz; 0 turns it off."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("github_api_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _backoff_bounds(self) -> Settings:
        if self.retry_backoff_base > self.retry_backoff_max:
            raise ValueError(
                f"{flag_name('retry_backoff_base')} ({self.retry_backoff_base}) must not exceed "
                f"{flag_name('retry_backoff_max')} ({self.retry_backoff_max})"
            )
        return self

    def to_env(self) -> dict[str, str]:
        """The settings as environment variables, so child processes see the same values."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            key = ENV_PREFIX + name.upper()
            env[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return env


class SettingsError(ValueError):
    """A setting was given a value it does not accept; the message names the flag and env var."""


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def accepted_values(field: str) -> str:
    """What a setting accepts, in words: its type and bounds, or its choices."""
    info = Settings.model_fields[field]
    bounds = []
    for meta in info.metadata:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{word} {getattr(meta, attr)}")
    annotation = info.annotation
    args = getattr(annotation, "__args__", ())
    if args and all(isinstance(a, str) for a in args):
        return "one of " + ", ".join(args)
    kind = {int: "a whole number", float: "a number", bool: "true or false"}.get(annotation, "")
    return " ".join(filter(None, [kind, " and ".join(bounds)])) or "a valid value"


def describe_error(error: ValidationError) -> str:
    """One line naming the offending setting, its flag and env var, and what it accepts."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    field = loc[0] if loc and loc[0] in Settings.model_fields else None
    if field is None:
        return f"invalid settings: {first['msg'].removeprefix('Value error, ')}"
    given = first.get("input")
    if first["type"] == "value_error":
        # Our own validators say what they accept in their message.
        expected = first["msg"].removeprefix("Value error, ")
    else:
        expected = f"expected {accepted_values(field)}"
    return f"invalid value {given!r} for {flag_name(field)} ({env_name(field)}): {expected}"


def load_settings(overrides: dict[str, object] | None = None) -> Settings:
    """Environment first, then ``overrides`` (CLI flags) on top; SettingsError on a bad value."""
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        raise SettingsError(describe_error(exc)) from None


def export_to_environ(settings: Settings) -> None:
    """Make child processes (Celery pool, subprocesses) inherit these exact settings."""
    os.environ.update(settings.to_env())
