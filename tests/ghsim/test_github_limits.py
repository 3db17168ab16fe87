"""GitHub's limits beyond the primary budget: points per endpoint and credential, the runner
registration cap per scope, runners per group, and the github.com profile that sets them."""

from __future__ import annotations

import time

import httpx

from tests.fixtures.ghsim import GHSIM_SECOND_TOKEN, Ghsim
from tests.ghsim.openapi import response_validator

ORG_RUNNERS = "/orgs/acme/actions/runners"


def _client(ghsim: Ghsim, token: str) -> httpx.Client:
    return httpx.Client(base_url=ghsim.url, headers={"Authorization": f"Bearer {token}"})


def _jit(http: httpx.Client, name: str, scope: str = "/orgs/acme") -> httpx.Response:
    return http.post(
        f"{scope}/actions/runners/generate-jitconfig",
        json={"name": name, "runner_group_id": 1, "labels": ["linux"]},
    )


def test_points_are_counted_per_endpoint_and_credential(ghsim: Ghsim) -> None:
    ghsim.admin.configure(secondary_points_per_minute=10)
    with _client(ghsim, ghsim.token) as a, _client(ghsim, GHSIM_SECOND_TOKEN) as b:
        reads = [a.get(ORG_RUNNERS).status_code for _ in range(11)]
        assert reads == [200] * 10 + [429]
        refused = a.get(ORG_RUNNERS)
        assert 50 <= int(refused.headers["retry-after"]) <= 60
        assert "secondary rate limit" in refused.json()["message"]
        # Another endpoint, and another credential, have their own points.
        assert a.get("/repos/acme/app/actions/runners").status_code == 200
        assert b.get(ORG_RUNNERS).status_code == 200
        # A write costs 5 points: two fit in 10.
        assert [_jit(a, f"r-{i}").status_code for i in range(3)] == [201, 201, 429]
    assert ghsim.admin.counters()["secondary_rate_limited"] == 3


def test_registrations_are_capped_per_scope_in_a_window(ghsim: Ghsim) -> None:
    ghsim.admin.configure(registrations_per_window=2, registration_window_s=1.5)
    with ghsim.http() as http:
        assert [_jit(http, f"r-{i}").status_code for i in range(2)] == [201, 201]
        assert _jit(http, "r-0").status_code == 409  # not a registration: no slot used
        capped = _jit(http, "r-2")
        assert capped.status_code == 429
        assert 1 <= int(capped.headers["retry-after"]) <= 2
        assert "registrations" in capped.json()["message"]
        # Another organization and a repository are scopes of their own.
        assert _jit(http, "r-2", scope="/orgs/other").status_code == 201
        assert _jit(http, "r-2", scope="/repos/acme/app").status_code == 201
        time.sleep(1.6)
        assert _jit(http, "r-2").status_code == 201
    assert ghsim.admin.counters()["registrations_capped"] == 1


def test_a_full_runner_group_refuses_another_runner(ghsim: Ghsim) -> None:
    ghsim.admin.configure(runners_per_group=2)
    template = "/orgs/{org}/actions/runners/generate-jitconfig"
    with ghsim.http() as http:
        first = _jit(http, "r-0").json()["runner"]
        _jit(http, "r-1")
        full = _jit(http, "r-2")
        assert full.status_code == 422
        response_validator("POST", template, 422).validate(full.json())
        assert "runner group 1" in full.json()["message"]
        assert _jit(http, "r-2", scope="/orgs/other").status_code == 201
        assert http.delete(f"{ORG_RUNNERS}/{first['id']}").status_code == 204
        assert _jit(http, "r-2").status_code == 201


def test_the_github_com_profile_sets_githubs_published_limits(ghsim: Ghsim) -> None:
    config = ghsim.admin.configure(profile="github.com", registration_window_s=60)
    assert config["rate_limit"] == 5000
    assert config["secondary_points_per_minute"] == 900
    assert config["secondary_max_concurrent"] == 100
    assert config["registrations_per_window"] == 1500
    assert config["registration_window_s"] == 60  # named with the profile: it wins
    assert config["runners_per_group"] == 10_000
    with ghsim.http() as http:
        answer = _jit(http, "r-1")
    assert (answer.status_code, answer.headers["x-ratelimit-resource"]) == (201, "core")
    assert answer.headers["x-ratelimit-limit"] == "5000"
    back = ghsim.admin.configure(profile="default")
    assert (back["secondary_points_per_minute"], back["registrations_per_window"]) == (0, 0)
