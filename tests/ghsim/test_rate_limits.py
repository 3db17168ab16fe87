"""Primary rate limits with GitHub's headers, and secondary limits answered with retry-after."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fixtures.ghsim import Ghsim

RUNNERS = "/repos/acme/app/actions/runners"
JIT = f"{RUNNERS}/generate-jitconfig"


def _jit(http: httpx.Client, name: str) -> httpx.Response:
    return http.post(JIT, json={"name": name, "runner_group_id": 1, "labels": ["linux"]})


def test_every_answer_carries_the_rate_limit_headers(ghsim: Ghsim) -> None:
    ghsim.admin.configure(rate_limit=10, rate_limit_window_s=600)
    with ghsim.http() as http:
        first, second = http.get(RUNNERS), http.get(RUNNERS)
        registration = _jit(http, "r-1")
    assert first.headers["x-ratelimit-limit"] == "10"
    assert (first.headers["x-ratelimit-used"], first.headers["x-ratelimit-remaining"]) == ("1", "9")
    assert (second.headers["x-ratelimit-used"], second.headers["x-ratelimit-remaining"]) == (
        "2",
        "8",
    )
    assert first.headers["x-ratelimit-resource"] == "core"
    reset = int(first.headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 601
    # generate-jitconfig spends from core, as GitHub reports it.
    assert registration.headers["x-ratelimit-resource"] == "core"
    assert registration.headers["x-ratelimit-used"] == "3"


def test_registration_can_have_its_own_resource_and_budget(ghsim: Ghsim) -> None:
    ghsim.admin.configure(
        rate_limit=10,
        registration_rate_limit=3,
        registration_resource="actions_runner_registration",
    )
    with ghsim.http() as http:
        http.get(RUNNERS)
        registrations = [_jit(http, f"r-{i}") for i in range(4)]
        tokens = [http.post(f"{RUNNERS}/{kind}") for kind in ("registration-token", "remove-token")]
        core = http.get(RUNNERS)
    assert {a.headers["x-ratelimit-resource"] for a in registrations + tokens} == {
        "actions_runner_registration"
    }
    assert [a.status_code for a in registrations] == [201, 201, 201, 403]
    assert registrations[0].headers["x-ratelimit-limit"] == "3"
    assert (core.headers["x-ratelimit-resource"], core.headers["x-ratelimit-used"]) == ("core", "2")


@pytest.mark.parametrize("status", [403, 429])
def test_an_exhausted_primary_limit_is_refused_until_the_window_resets(
    ghsim: Ghsim, status: int
) -> None:
    ghsim.admin.configure(rate_limit=2, rate_limit_window_s=2, rate_limit_status=status)
    with ghsim.http() as http:
        assert [http.get(RUNNERS).status_code for _ in range(2)] == [200, 200]
        refused = http.get(RUNNERS)
        assert refused.status_code == status
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert refused.json()["message"] == "API rate limit exceeded for user ID 1."
        time.sleep(2.1)
        assert http.get(RUNNERS).status_code == 200
    assert ghsim.admin.counters()["primary_rate_limited"] == 1


def test_each_credential_has_its_own_budget(ghsim: Ghsim) -> None:
    ghsim.admin.configure(rate_limit=1)
    path = f"/app/installations/{ghsim.app.installation_id}/access_tokens"
    with ghsim.http() as http:
        assert http.get(RUNNERS).status_code == 200
        assert http.get(RUNNERS).status_code == 403
    with httpx.Client(base_url=ghsim.url) as http:
        token = http.post(path, headers={"Authorization": f"Bearer {ghsim.app.jwt()}"})
        as_installation = {"Authorization": f"token {token.json()['token']}"}
        assert http.get(RUNNERS, headers=as_installation).status_code == 200


def test_rate_limit_status_reports_the_budget_without_spending_it(ghsim: Ghsim) -> None:
    ghsim.admin.configure(rate_limit=5, registration_resource="actions_runner_registration")
    with ghsim.http() as http:
        http.get(RUNNERS)
        _jit(http, "r-1")
        for _ in range(3):
            status = http.get("/rate_limit").json()["resources"]
        assert (status["core"]["used"], status["core"]["remaining"]) == (1, 4)
        assert status["actions_runner_registration"]["used"] == 1
        assert http.get(RUNNERS).headers["x-ratelimit-used"] == "2"


def test_admin_calls_need_no_credential_and_use_no_budget(ghsim: Ghsim) -> None:
    ghsim.admin.configure(rate_limit=1)
    for _ in range(5):
        ghsim.admin.registrations()
    with ghsim.http() as http:
        assert http.get(RUNNERS).status_code == 200


def test_generate_jitconfig_per_minute_limit_answers_with_retry_after(ghsim: Ghsim) -> None:
    ghsim.admin.configure(secondary_jitconfig_per_minute=2)
    with ghsim.http() as http:
        assert [_jit(http, f"r-{i}").status_code for i in range(2)] == [201, 201]
        refused = _jit(http, "r-2")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "secondary rate limit" in refused.json()["message"]
        # Other endpoints are not held back by the registration limit.
        assert http.get(RUNNERS).status_code == 200
    assert "r-2" not in ghsim.runner_names()
    assert ghsim.admin.counters()["secondary_rate_limited"] == 1


def test_too_many_concurrent_requests_are_refused_with_retry_after(ghsim: Ghsim) -> None:
    ghsim.admin.configure(
        secondary_max_concurrent=2, secondary_status=403, secondary_retry_after_s=3, latency_ms=600
    )
    with ghsim.http() as http, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: http.get(RUNNERS), range(6)))
    refused = [a for a in answers if a.status_code == 403]
    assert refused, [a.status_code for a in answers]
    assert all(a.headers["retry-after"] == "3" for a in refused)
    assert sum(a.status_code == 200 for a in answers) >= 2
    assert ghsim.admin.counters()["secondary_rate_limited"] == len(refused)
