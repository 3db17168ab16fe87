"""Faults and limits of one credential, set at run time: throttle it, revoke it, slow it or
give it its own primary budget, while every other credential keeps GitHub's normal answers.

A credential is named by a non-secret key: ``pat:N`` (the N-th configured PAT) or
``installation:ID`` (every token of that App installation, and its token exchange).
"""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from provisioner.ghsim.config import ENDPOINT_NAMES


class Throttle(BaseModel):
    """Refuse the credential's calls as a secondary rate limit does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal[403, 429] = 429
    retry_after_s: int = Field(60, ge=0, le=3600)
    endpoint: str = Field("all", description="Only this endpoint (names as --error-endpoint).")
    until: float = Field(0.0, ge=0, description="Epoch seconds it ends; 0: until lifted.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value not in ENDPOINT_NAMES:
            raise ValueError("use one of " + ", ".join(ENDPOINT_NAMES))
        return value

    def hits(self, endpoint: str, now: float) -> bool:
        active = not self.until or now < self.until
        return active and self.endpoint in ("all", endpoint)


class CredentialRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    revoked: bool = Field(False, description='Every call answered 401 "Bad credentials".')
    latency_ms: float = Field(0.0, ge=0, le=600_000, description="Extra delay of every call.")
    throttle: Throttle | None = None
    rate_limit: int | None = Field(
        None, ge=1, le=10_000_000, description="Primary requests per window instead of the knob."
    )

    def is_default(self) -> bool:
        return self == NO_RULES


NO_RULES = CredentialRules()


class RulesError(ValueError):
    """A rule was given a value it does not accept; the message names it."""


def merged_rules(current: CredentialRules, changes: dict[str, object]) -> CredentialRules:
    """``current`` with ``changes`` applied; RulesError names the first bad field."""
    try:
        return CredentialRules.model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first.get("loc") or ("rules",))
        message = first["msg"].removeprefix("Value error, ")
        raise RulesError(f"{field}: {message} (got {first.get('input')!r})") from None


class CredentialRulesStore:
    """Rules by credential key; thread-safe. A credential without rules has NO_RULES."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, CredentialRules] = {}

    def get(self, key: str) -> CredentialRules:
        with self._lock:
            return self._rules.get(key, NO_RULES)

    def update(self, key: str, changes: dict[str, object]) -> CredentialRules:
        with self._lock:
            rules = merged_rules(self._rules.get(key, NO_RULES), changes)
            if rules.is_default():
                self._rules.pop(key, None)
            else:
                self._rules[key] = rules
            return rules

    def all(self) -> dict[str, CredentialRules]:
        with self._lock:
            return dict(self._rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
