"""The `--tenants` case's plan: shares, fresh credentials the simulator knows, and the least
time GitHub's limits allow one tenant's share."""

from __future__ import annotations

import time

import pytest

from provisioner.bench.tenants import (
    CredentialPool,
    GitHubLimits,
    TenantCase,
    minimum_seconds,
    shares,
)
from provisioner.ghsim.auth import Authenticator
from provisioner.ghsim.config import DEFAULT_PAT, SimulatorConfig

GITHUB_COM = GitHubLimits.from_simulator_config(SimulatorConfig(profile="github.com").model_dump())


def test_shares_split_n_as_evenly_as_whole_runners_allow() -> None:
    assert shares(40, 2) == [20, 20]
    assert shares(10, 4) == [3, 3, 2, 2]
    assert sum(shares(1601, 8)) == 1601


def test_one_tenant_alone_gets_the_largest_share_and_k1_is_its_own_baseline() -> None:
    case = TenantCase(runners=10, tenants=4, concurrency=10)
    assert case.alone_share == 3
    assert case.credentials_needed == 5
    single = TenantCase(runners=10, tenants=1, concurrency=10)
    assert not single.runs_alone and single.credentials_needed == 1


def test_each_credential_is_a_token_the_simulator_counts_under_its_key() -> None:
    pool = CredentialPool(3, first_place=2)
    config = SimulatorConfig(pats=(DEFAULT_PAT, *pool.tokens))
    auth = Authenticator()
    for credential in pool.credentials:
        caller = auth.caller(f"Bearer {credential.token}", config, time.time())
        assert caller.key == credential.key
    assert len({pool.take().key for _ in range(3)}) == 3
    with pytest.raises(RuntimeError):
        pool.take()


def test_github_com_profile_reads_as_githubs_published_limits() -> None:
    assert GITHUB_COM.jitconfig_per_minute == 180
    assert GITHUB_COM.max_concurrent == 100
    assert (GITHUB_COM.registrations_per_window, GITHUB_COM.registration_window_s) == (1500, 300)
    assert (GITHUB_COM.primary_limit, GITHUB_COM.primary_window_s) == (5000, 3600)


def test_no_limits_leave_only_one_round_trip() -> None:
    unlimited = GitHubLimits.from_simulator_config(SimulatorConfig().model_dump())
    assert minimum_seconds(1000, 0.3, unlimited).seconds == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("share", "seconds", "bound_by"),
    [
        # A fresh token spends its minute's 180 generate-jitconfig at once ...
        (50, 0.3, "latency"),
        (180, 0.6, "concurrent requests"),
        # ... and the 181st waits for the minute to pass.
        (200, 60.3, "points a minute"),
        # At 180 a minute one token never reaches the 1,500 registrations per 5 minutes.
        (1600, 8 * 60 + 0.3, "points a minute"),
    ],
)
def test_minimum_under_github_com_limits(share: int, seconds: float, bound_by: str) -> None:
    minimum = minimum_seconds(share, 0.3, GITHUB_COM)
    assert minimum.seconds == pytest.approx(seconds)
    assert minimum.bound_by == bound_by


def test_registration_cap_and_primary_budget_bind_when_they_are_the_tighter_limit() -> None:
    capped = GitHubLimits(0, 0, 100, 300.0, 0, 3600.0)
    assert minimum_seconds(250, 0.1, capped).seconds == pytest.approx(600.1)
    assert minimum_seconds(250, 0.1, capped).bound_by == "registrations per scope"
    budget = GitHubLimits(0, 0, 0, 300.0, 100, 3600.0)
    assert minimum_seconds(101, 0.1, budget).bound_by == "primary budget"


def test_a_jitconfig_cap_per_minute_bounds_like_its_points() -> None:
    knobs = SimulatorConfig(secondary_jitconfig_per_minute=120).model_dump()
    assert GitHubLimits.from_simulator_config(knobs).jitconfig_per_minute == 120
