"""One Settings object for every process: reconciler, workers, CLI, benchmark.

Every field is an environment variable (``PROVISIONER_<NAME>``) and a CLI flag
(``--name-with-dashes``, booleans as ``--x/--no-x``); see ``provisioner.cli.flags``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal
from urllib.parse import SplitResult, quote, urlsplit

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PROVISIONER_"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# A Kubernetes namespace name: an RFC 1123 (DNS-1123) label.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Settings given through the environment only: a flag's value shows in the process list.
ENVIRONMENT_ONLY = frozenset({"redis_password"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", validate_default=True, frozen=True
    )

    # Creation fan-out.
    runner_creation_concurrency: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Runner creations at once, across all workers: each credential's calls to "
        "GitHub in flight, and every credential's Kubernetes writes together.",
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
        description="Lower a credential's creation concurrency when GitHub throttles it and "
        "raise it again while calls succeed, within --runner-creation-concurrency; off keeps "
        "it fixed.",
    )

    # Global rate limits, shared by every worker through Redis.
    github_requests_per_second: float = Field(
        50.0,
        gt=0,
        le=100_000,
        description="Sustained GitHub API request rate of each credential, across all workers.",
    )
    github_burst: int = Field(
        100, ge=1, le=100_000, description="A credential's requests allowed at once above the rate."
    )
    github_registrations_per_minute: int = Field(
        180,
        ge=1,
        le=100_000,
        description="generate-jitconfig calls per minute of each credential: GitHub's secondary "
        "limit of 900 points a minute per endpoint at 5 points a POST.",
    )
    github_scope_registrations: int = Field(
        1500,
        ge=1,
        le=1_000_000,
        description="Runner registrations per 5 minutes in one repository, organisation or "
        "enterprise: GitHub's cap.",
    )
    github_budget_reserve: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description="Calls of each credential's primary rate limit kept for removing runners: "
        "no creation spends them (a runner it could not remove would stay registered).",
    )
    # Two writes a runner: 100 runners a second, about what a scheduler places; the API
    # server's own priority and fairness queues anything above what it can take.
    kube_requests_per_second: float = Field(
        200.0, gt=0, le=100_000, description="Sustained Kubernetes write rate across all workers."
    )
    kube_burst: int = Field(
        400, ge=1, le=100_000, description="Kubernetes writes allowed at once above the rate."
    )

    # Retries: a creation is retried until its --runner-creation-timeout, not a number of
    # times, so an outage of a few seconds is ridden out whatever its count of refusals.
    retry_backoff_base: float = Field(
        0.5, gt=0, le=600, description="Seconds of the first retry's backoff ceiling."
    )
    retry_backoff_max: float = Field(
        5.0, gt=0, le=3600, description="Largest backoff between two attempts, in seconds."
    )

    # Where things are.
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis for queue, ledger, limits: redis://HOST:PORT/DB, or rediss:// for "
        "TLS (add ?ssl_cert_reqs=required&ssl_ca_certs=/path/ca.pem to verify the server).",
    )
    redis_password: SecretStr | None = Field(
        None,
        description="Password for Redis (AUTH), used by every connection and by the Celery "
        "broker and result backend; replaces one in the URL. Environment variable only.",
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
    github_allowed_hosts: str = Field(
        "",
        description="GitHub Enterprise Server hosts (HOST or HOST:PORT, comma-separated) that "
        "scale sets may point at; github.com is always allowed. A scale set pointing elsewhere "
        "is Degraded and its credentials are never sent.",
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
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        parts = urlsplit(value)
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(
                    "a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock"
                )
            return value
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise ValueError("the port must be a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError("no host: expected redis://HOST:PORT/DB")
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise ValueError(f"the database after the host must be a number, not {database!r}")
        return value

    @field_validator("redis_password")
    @classmethod
    def _password_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("is empty: unset it for a Redis without a password")
        return value

    @field_validator("kubeconfig")
    @classmethod
    def _readable_kubeconfig(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            with open(value, encoding="utf-8") as file:
                content = yaml.safe_load(file)
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror}") from None
        except (yaml.YAMLError, UnicodeDecodeError):
            raise ValueError(f"{value} is not a kubeconfig (not YAML)") from None
        if not isinstance(content, dict) or not content.get("clusters"):
            raise ValueError(f"{value} is not a kubeconfig (no clusters)")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace_name(cls, value: str | None) -> str | None:
        if not value:
            return None
        if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
            raise ValueError(
                "a namespace name is a DNS-1123 label: at most 63 lowercase letters, digits "
                "and '-', starting and ending with a letter or digit"
            )
        return value

    @field_validator("github_api_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("github_allowed_hosts")
    @classmethod
    def _host_list(cls, value: str) -> str:
        for host in (h.strip() for h in value.split(",")):
            if host and not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?", host):
                raise ValueError(f"{host!r} is not a HOST or HOST:PORT (no scheme, no path)")
        return value

    @property
    def allowed_github_hosts(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.github_allowed_hosts.split(",") if h.strip())

    @model_validator(mode="after")
    def _backoff_bounds(self) -> Settings:
        if self.retry_backoff_base > self.retry_backoff_max:
            raise ValueError(
                f"{flag_name('retry_backoff_base')} ({self.retry_backoff_base}) must not exceed "
                f"{flag_name('retry_backoff_max')} ({self.retry_backoff_max})"
            )
        return self

    def redis_connection_url(self) -> str:
        """The URL every Redis client and the Celery broker and backend connect with: the
        Redis URL with the password in it. It holds a secret: never log or print it."""
        if self.redis_password is None:
            return self.redis_url
        parts = urlsplit(self.redis_url)
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        password = quote(self.redis_password.get_secret_value(), safe="")
        return SplitResult(
            parts.scheme, f"{user}:{password}@{host}", parts.path, parts.query, parts.fragment
        ).geturl()

    def to_env(self, reveal_secrets: bool = True) -> dict[str, str]:
        """The settings as environment variables, so child processes see the same values;
        ``reveal_secrets=False`` masks secrets, for showing the settings to a person."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            key = ENV_PREFIX + name.upper()
            if isinstance(value, SecretStr):
                env[key] = value.get_secret_value() if reveal_secrets else "(set, hidden)"
            elif name == "redis_url" and not reveal_secrets:
                env[key] = redact_url(value)
            elif isinstance(value, bool):
                env[key] = "true" if value else "false"
            else:
                env[key] = str(value)
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
    kinds: dict[object, str] = {int: "a whole number", float: "a number", bool: "true or false"}
    kind = kinds.get(annotation, "")
    return " ".join(filter(None, [kind, " and ".join(bounds)])) or "a valid value"


def describe_error(error: ValidationError) -> str:
    """One line naming the offending setting, its flag and env var, and what it accepts."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    field = loc[0] if loc and loc[0] in Settings.model_fields else None
    if field is None:
        return f"invalid settings: {first['msg'].removeprefix('Value error, ')}"
    if first["type"] == "value_error":
        # Our own validators say what they accept in their message.
        expected = first["msg"].removeprefix("Value error, ")
    else:
        expected = f"expected {accepted_values(field)}"
    if field in ENVIRONMENT_ONLY:
        # A secret: its value is never repeated.
        return f"invalid {env_name(field)}: {expected}"
    given = first.get("input")
    if field == "redis_url" and isinstance(given, str):
        given = redact_url(given)
    return f"invalid value {given!r} for {flag_name(field)} ({env_name(field)}): {expected}"


def redact_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***``, fit to show or log."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return SplitResult(
        parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment
    ).geturl()


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Environment first, then ``overrides`` (CLI flags) on top; SettingsError on a bad value."""
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        raise SettingsError(describe_error(exc)) from None


def export_to_environ(settings: Settings) -> None:
    """Make child processes (Celery pool, subprocesses) inherit these exact settings."""
    os.environ.update(settings.to_env())
