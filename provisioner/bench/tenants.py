"""The `--tenants K` case of ``provisioner bench``, its pure part: how N runners are split over
K tenants (a RunnerScaleSet each, in its own organisation, with its own credential), which
simulator tokens the runs use, and the least time GitHub's limits allow a tenant's share."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

MAX_TENANTS = 64
# A POST costs 5 of an endpoint's points a minute (GitHub's secondary limits).
POST_POINTS = 5


def tenant_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of tenants, got {text!r}") from None
    if not 1 <= value <= MAX_TENANTS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_TENANTS}, got {value}")
    return value


def shares(runners: int, tenants: int) -> list[int]:
    """N split over K tenants as evenly as whole runners allow, the larger shares first."""
    base, extra = divmod(runners, tenants)
    return [base + (1 if index < extra else 0) for index in range(tenants)]


@dataclass(frozen=True)
class TenantCase:
    """N runners over K tenants at one creation concurrency, after one tenant alone with the
    largest share (the same per-tenant work, side by side in the same run)."""

    runners: int
    tenants: int
    concurrency: int

    @property
    def shares(self) -> list[int]:
        return shares(self.runners, self.tenants)

    @property
    def alone_share(self) -> int:
        return self.shares[0]

    @property
    def runs_alone(self) -> bool:
        """Whether a separate one-tenant run is needed: with K = 1 the run is its own baseline."""
        return self.tenants > 1

    @property
    def credentials_needed(self) -> int:
        return self.tenants + (1 if self.runs_alone else 0)


def plan_tenant_cases(
    counts: list[int], tenants: int, concurrency_values: list[int]
) -> list[TenantCase]:
    return [
        TenantCase(n, tenants, concurrency) for concurrency in concurrency_values for n in counts
    ]


@dataclass(frozen=True)
class Credential:
    token: str
    # How the simulator names it in its counters (the token's place among its PATs).
    key: str


class CredentialPool:
    """One fresh simulator token per tenant and run, so no run inherits another's spent budget
    or minute of points. ``first_place`` is the place (from 1) of the first token among the
    simulator's PATs, after the ones the bench's warm-ups use."""

    def __init__(self, count: int, first_place: int):
        self.credentials = [
            Credential(f"bench-tenant-token-{offset + 1}", f"pat:{first_place + offset}")
            for offset in range(count)
        ]
        self._next = 0

    @property
    def tokens(self) -> list[str]:
        return [credential.token for credential in self.credentials]

    def take(self) -> Credential:
        if self._next >= len(self.credentials):
            raise RuntimeError("the bench planned fewer credentials than its runs use")
        credential = self.credentials[self._next]
        self._next += 1
        return credential


@dataclass(frozen=True)
class GitHubLimits:
    """The simulator's limits that bound one credential's creations (0: no such limit)."""

    points_per_minute: int
    max_concurrent: int
    registrations_per_window: int
    registration_window_s: float
    primary_limit: int
    primary_window_s: float

    @classmethod
    def from_simulator_config(cls, config: dict[str, Any]) -> GitHubLimits:
        """From the simulator's knobs (GET /_sim/config)."""
        # A per-minute cap on generate-jitconfig itself bounds it as its points would.
        caps = [
            int(config.get("secondary_points_per_minute", 0)),
            int(config.get("secondary_jitconfig_per_minute", 0)) * POST_POINTS,
        ]
        points = min((cap for cap in caps if cap), default=0)
        primary = (
            int(config.get("registration_rate_limit", 0))
            if config.get("registration_resource") == "actions_runner_registration"
            else int(config.get("rate_limit", 0))
        )
        return cls(
            points_per_minute=points,
            max_concurrent=int(config.get("secondary_max_concurrent", 0)),
            registrations_per_window=int(config.get("registrations_per_window", 0)),
            registration_window_s=float(config.get("registration_window_s", 300.0)),
            primary_limit=primary,
            primary_window_s=float(config.get("rate_limit_window_s", 3600.0)),
        )

    @property
    def jitconfig_per_minute(self) -> int:
        return self.points_per_minute // POST_POINTS


@dataclass(frozen=True)
class MinimumTime:
    seconds: float
    # The limit that sets it: latency, concurrent requests, points a minute, registrations per
    # scope, or the primary budget.
    bound_by: str


def _windows_before(calls: int, per_window: int) -> int:
    """Full windows that must pass before call number ``calls`` fits (none if unlimited)."""
    return (calls - 1) // per_window if per_window else 0


def minimum_seconds(share: int, latency_s: float, limits: GitHubLimits) -> MinimumTime:
    """The least time to ``share`` generate-jitconfig answers for one credential and scope.

    Every limit is a window that a fresh credential may spend at once (as the simulator and
    GitHub count them), so the share-th call can start only after the full windows its
    predecessors fill, and is answered one latency later. Concurrent requests bound the calls
    in flight: ``share / max_concurrent`` round trips. Creations of other tenants do not count:
    each has its own credential and organisation.
    """
    bounds = {
        "latency": latency_s,
        "concurrent requests": math.ceil(share / limits.max_concurrent) * latency_s
        if limits.max_concurrent
        else latency_s,
        "points a minute": _windows_before(share, limits.jitconfig_per_minute) * 60.0 + latency_s,
        "registrations per scope": _windows_before(share, limits.registrations_per_window)
        * limits.registration_window_s
        + latency_s,
        "primary budget": _windows_before(share, limits.primary_limit) * limits.primary_window_s
        + latency_s,
    }
    bound_by = max(bounds, key=lambda name: bounds[name])
    return MinimumTime(bounds[bound_by], bound_by)
