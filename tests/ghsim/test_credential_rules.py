"""Faults and limits of one credential, set at run time, leave every other credential alone."""

from __future__ import annotations

import time

import httpx
import pytest

from provisioner.ghsim.admin import SimulatorAdminError
from tests.fixtures.ghsim import GHSIM_SECOND_INSTALLATION_ID, GHSIM_SECOND_TOKEN, Ghsim

RUNNERS = "/orgs/acme/actions/runners"
JIT = f"{RUNNERS}/generate-jitconfig"


def _client(ghsim: Ghsim, token: str, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=ghsim.url, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def _jit(http: httpx.Client, name: str) -> httpx.Response:
    return http.post(JIT, json={"name": name, "runner_group_id": 1, "labels": ["linux"]})


def _installation_token(ghsim: Ghsim, installation_id: int) -> str:
    answer = httpx.post(
        f"{ghsim.url}/app/installations/{installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {ghsim.app.jwt()}"},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def test_a_throttled_token_gets_429_with_retry_after_and_the_other_does_not(
    ghsim: Ghsim,
) -> None:
    rules = ghsim.admin.throttle_credential(token=ghsim.token, retry_after_s=30)
    assert rules["credential"] == "pat:1"
    with _client(ghsim, ghsim.token) as a, _client(ghsim, GHSIM_SECOND_TOKEN) as b:
        refused = _jit(a, "a-1")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "30"
        assert "secondary rate limit" in refused.json()["message"]
        assert refused.headers["x-ratelimit-resource"] == "core"
        assert a.get(RUNNERS).status_code == 429
        assert _jit(b, "b-1").status_code == 201
        assert b.get(RUNNERS).status_code == 200
    assert ghsim.runner_names() == {"b-1"}
    by_credential = ghsim.admin.counters()["by_credential"]
    assert by_credential["pat:1"] == {"429": 2}
    assert by_credential["pat:2"] == {"201": 1, "200": 1}


def test_a_throttle_can_hit_one_endpoint_and_end_by_itself(ghsim: Ghsim) -> None:
    ghsim.admin.throttle_credential(
        token=ghsim.token, endpoint="generate-jitconfig", status=403, retry_after_s=5, for_s=1
    )
    with _client(ghsim, ghsim.token) as a:
        assert _jit(a, "a-1").status_code == 403
        assert a.get(RUNNERS).status_code == 200
        time.sleep(1.1)
        assert _jit(a, "a-1").status_code == 201


def test_a_revoked_token_gets_bad_credentials_until_restored(ghsim: Ghsim) -> None:
    ghsim.admin.revoke_credential(token=GHSIM_SECOND_TOKEN)
    with _client(ghsim, GHSIM_SECOND_TOKEN) as b, _client(ghsim, ghsim.token) as a:
        refused = _jit(b, "b-1")
        assert refused.status_code == 401
        assert refused.json()["message"] == "Bad credentials"
        assert b.get("/rate_limit").status_code == 401
        assert _jit(a, "a-1").status_code == 201
        ghsim.admin.restore_credential(token=GHSIM_SECOND_TOKEN)
        assert _jit(b, "b-1").status_code == 201
    assert ghsim.admin.credential_rules() == []


def test_a_slow_token_waits_and_the_other_does_not(ghsim: Ghsim) -> None:
    ghsim.admin.slow_credential(600, token=ghsim.token)
    with _client(ghsim, ghsim.token) as a, _client(ghsim, GHSIM_SECOND_TOKEN) as b:
        started = time.monotonic()
        assert b.get(RUNNERS).status_code == 200
        fast = time.monotonic() - started
        started = time.monotonic()
        assert a.get(RUNNERS).status_code == 200
        slow = time.monotonic() - started
    assert slow >= 0.6
    assert fast < 0.5


def test_a_slow_token_outlasts_its_client_timeout(ghsim: Ghsim) -> None:
    ghsim.admin.slow_credential(3000, token=ghsim.token)
    with _client(ghsim, ghsim.token, timeout=0.3) as a, pytest.raises(httpx.ReadTimeout):
        _jit(a, "a-1")


def test_an_installation_is_named_by_its_id_and_covers_its_tokens(ghsim: Ghsim) -> None:
    first = _installation_token(ghsim, ghsim.app.installation_id)
    second = _installation_token(ghsim, GHSIM_SECOND_INSTALLATION_ID)
    rules = ghsim.admin.revoke_credential(installation_id=GHSIM_SECOND_INSTALLATION_ID)
    assert rules["credential"] == f"installation:{GHSIM_SECOND_INSTALLATION_ID}"
    with _client(ghsim, second) as revoked, _client(ghsim, first) as fine:
        assert revoked.get(RUNNERS).status_code == 401
        assert fine.get(RUNNERS).status_code == 200
    # Its token exchange is refused too, so a fresh token does not get around it.
    exchange = httpx.post(
        f"{ghsim.url}/app/installations/{GHSIM_SECOND_INSTALLATION_ID}/access_tokens",
        headers={"Authorization": f"Bearer {ghsim.app.jwt()}"},
    )
    assert exchange.status_code == 401
    # An installation token names its installation too.
    assert ghsim.admin.slow_credential(10, token=first)["credential"] == (
        f"installation:{ghsim.app.installation_id}"
    )


def test_a_credential_can_have_its_own_primary_budget(ghsim: Ghsim) -> None:
    ghsim.admin.set_credential_rules(token=ghsim.token, rate_limit=2)
    with _client(ghsim, ghsim.token) as a, _client(ghsim, GHSIM_SECOND_TOKEN) as b:
        answers = [a.get(RUNNERS) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [200, 200, 403]
        assert answers[0].headers["x-ratelimit-limit"] == "2"
        assert a.get("/rate_limit").json()["resources"]["core"]["limit"] == 2
        other = b.get(RUNNERS)
    assert (other.status_code, other.headers["x-ratelimit-limit"]) == (200, "5000")


def test_each_credential_reports_its_own_budget(ghsim: Ghsim) -> None:
    with _client(ghsim, ghsim.token) as a, _client(ghsim, GHSIM_SECOND_TOKEN) as b:
        for _ in range(3):
            a.get(RUNNERS)
        mine, theirs = a.get(RUNNERS), b.get(RUNNERS)
    assert (mine.headers["x-ratelimit-used"], mine.headers["x-ratelimit-remaining"]) == (
        "4",
        "4996",
    )
    assert theirs.headers["x-ratelimit-used"] == "1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"revoked": True}, 'name the credential with "token" or "installation_id"'),
        ({"token": "ghp_unknown", "revoked": True}, "token: not a credential"),
        ({"installation_id": 5, "revoked": True}, "installation_id: not an installation"),
        ({"token": "ghp_simulator_test_token", "latency_ms": -1}, "latency_ms:"),
        ({"token": "ghp_simulator_test_token", "throttle": {"status": 500}}, "throttle.status:"),
        ({"token": "ghp_simulator_test_token", "throttle": {"endpoint": "x"}}, "throttle.endpoint"),
        ({"token": "ghp_simulator_test_token", "throttle": {"for_s": 0}}, "throttle.for_s"),
        ({"token": "ghp_simulator_test_token", "banned": True}, "banned:"),
    ],
)
def test_bad_rules_are_refused_naming_the_field_and_never_the_token(
    ghsim: Ghsim, body: dict, message: str
) -> None:
    answer = httpx.post(f"{ghsim.url}/_sim/credentials", json=body)
    assert answer.status_code == 422
    assert message in answer.json()["message"]
    assert "ghp_" not in answer.text
    assert ghsim.admin.credential_rules() == []


def test_rules_are_listed_by_key_without_the_token_and_forgotten_on_reset(ghsim: Ghsim) -> None:
    ghsim.admin.revoke_credential(token=ghsim.token)
    ghsim.admin.slow_credential(100, token=GHSIM_SECOND_TOKEN)
    listed = ghsim.admin.credential_rules()
    assert [(r["credential"], r["revoked"], r["latency_ms"]) for r in listed] == [
        ("pat:1", True, 0.0),
        ("pat:2", False, 100.0),
    ]
    assert ghsim.token not in str(listed)
    with pytest.raises(SimulatorAdminError, match="422"):
        ghsim.admin.revoke_credential(token="nobody")
    ghsim.admin.reset()
    assert ghsim.admin.credential_rules() == []
