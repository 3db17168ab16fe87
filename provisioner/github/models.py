"""What the GitHub client returns, and the pure parsing of URLs, bodies and headers."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from provisioner.github.errors import InvalidGitHubResponse

ScopeKind = Literal["repository", "organization", "enterprise"]

SCOPE_URL_FORMS = (
    "https://github.com/OWNER/REPO, https://github.com/ORG or "
    "https://github.com/enterprises/ENTERPRISE (or the same on a GitHub Enterprise Server host)"
)
GITHUB_COM = "github.com"

# Seconds to wait after a rate-limit refusal that says nothing about when to come back.
DEFAULT_RETRY_AFTER_S = 60.0


class InvalidScope(ValueError):
    """A githubConfigUrl that names no repository, organization or enterprise."""


@dataclass(frozen=True)
class GitHubScope:
    """Where runners are registered: a repository, an organization or an enterprise."""

    kind: ScopeKind
    owner: str  # the repository owner, the organization or the enterprise slug
    repo: str | None = None
    host: str = GITHUB_COM  # where the scope lives: github.com or a GitHub Enterprise Server
    scheme: str = "https"

    @classmethod
    def parse(cls, url: str) -> GitHubScope:
        parts = urlsplit(url.strip())
        segments = [segment for segment in parts.path.split("/") if segment]
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidScope(
                f"githubConfigUrl {url!r} is not an http(s) URL; use {SCOPE_URL_FORMS}"
            )
        if any(segment in (".", "..") for segment in segments):
            raise InvalidScope(
                f"githubConfigUrl {url!r} has a '.' or '..' path segment; use {SCOPE_URL_FORMS}"
            )
        where = {"host": parts.netloc.lower(), "scheme": parts.scheme}
        if segments and segments[0] == "enterprises":
            if len(segments) == 2:
                return cls("enterprise", segments[1], **where)
            raise InvalidScope(
                f"githubConfigUrl {url!r} names no enterprise; use "
                "https://HOST/enterprises/ENTERPRISE"
            )
        if len(segments) == 1:
            return cls("organization", segments[0], **where)
        if len(segments) == 2:
            return cls("repository", segments[0], segments[1].removesuffix(".git"), **where)
        raise InvalidScope(
            f"githubConfigUrl {url!r} names no repository, organization or enterprise; "
            f"use {SCOPE_URL_FORMS}"
        )

    @property
    def api_path(self) -> str:
        """The REST prefix of this scope's runner endpoints (``{api_path}/actions/runners``)."""
        if self.kind == "repository":
            return f"/repos/{self.owner}/{self.repo}"
        if self.kind == "organization":
            return f"/orgs/{self.owner}"
        return f"/enterprises/{self.owner}"

    def __str__(self) -> str:
        name = f"{self.owner}/{self.repo}" if self.kind == "repository" else self.owner
        return f"{self.kind} {name}"


@dataclass(frozen=True)
class Runner:
    id: int
    name: str
    os: str
    status: str  # "online" or "offline"
    busy: bool
    labels: tuple[str, ...]


@dataclass(frozen=True)
class JitConfig:
    runner: Runner
    # The runner's credential: kept out of repr so it cannot reach a log by accident.
    encoded_jit_config: str = field(repr=False)


@dataclass(frozen=True)
class RateLimitInfo:
    """The x-ratelimit-* headers of one answer."""

    limit: int
    remaining: int
    used: int
    reset: int  # epoch seconds when the window starts over
    resource: str


def _field(body: Mapping[str, Any], name: str, kind: type, where: str, operation: str) -> Any:
    value = body.get(name)
    # bool is an int in Python; an id must not be accepted as True.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidGitHubResponse(
            f"GitHub's answer to {operation} has no valid {where}{name} (expected {kind.__name__})",
            field=f"{where}{name}",
        )
    return value


def parse_runner(body: Any, operation: str, where: str = "") -> Runner:
    if not isinstance(body, Mapping):
        raise InvalidGitHubResponse(
            f"GitHub's answer to {operation} has no runner object{' at ' + where if where else ''}",
            field=where.rstrip(".") or "runner",
        )
    labels = _field(body, "labels", list, where, operation)
    names = []
    for index, label in enumerate(labels):
        names.append(_field(label, "name", str, f"{where}labels[{index}].", operation))
    return Runner(
        id=_field(body, "id", int, where, operation),
        name=_field(body, "name", str, where, operation),
        os=_field(body, "os", str, where, operation),
        status=_field(body, "status", str, where, operation),
        busy=_field(body, "busy", bool, where, operation),
        labels=tuple(names),
    )


def parse_jit_config(body: Any, operation: str) -> JitConfig:
    if not isinstance(body, Mapping):
        raise InvalidGitHubResponse(
            f"GitHub's answer to {operation} is not a JSON object", field="runner"
        )
    runner = parse_runner(body.get("runner"), operation, "runner.")
    encoded = _field(body, "encoded_jit_config", str, "", operation)
    return JitConfig(runner, encoded)


def parse_runner_page(body: Any, operation: str) -> tuple[list[Runner], int]:
    """The runners of one list page and the total_count GitHub reports."""
    if not isinstance(body, Mapping):
        raise InvalidGitHubResponse(
            f"GitHub's answer to {operation} is not a JSON object", field="runners"
        )
    total = _field(body, "total_count", int, "", operation)
    runners = _field(body, "runners", list, "", operation)
    return [parse_runner(r, operation, f"runners[{i}].") for i, r in enumerate(runners)], total


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """RateLimitInfo from x-ratelimit-* headers; None when they are absent or malformed."""
    try:
        limit = int(headers["x-ratelimit-limit"])
        remaining = int(headers["x-ratelimit-remaining"])
        reset = int(float(headers["x-ratelimit-reset"]))
        used = int(headers.get("x-ratelimit-used", limit - remaining))
    except (KeyError, ValueError):
        return None
    return RateLimitInfo(limit, remaining, used, reset, headers.get("x-ratelimit-resource", "core"))


def is_rate_limited(status: int, headers: Mapping[str, str], message: str) -> bool:
    """Whether a 403/429 is a rate-limit refusal rather than a permission problem."""
    if status == 429:
        return True
    if status != 403:
        return False
    return (
        "retry-after" in headers
        or headers.get("x-ratelimit-remaining") == "0"
        or "rate limit" in message.lower()
    )


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float:
    """Seconds to wait: Retry-After, else until x-ratelimit-reset when nothing remains, else 60."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        seconds = _retry_after_value(retry_after, now)
        if seconds is not None:
            return seconds
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(headers["x-ratelimit-reset"]) - now)
        except (KeyError, ValueError):
            pass
    return DEFAULT_RETRY_AFTER_S


def _retry_after_value(value: str, now: float) -> float | None:
    """Retry-After is delta-seconds or an HTTP date."""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
