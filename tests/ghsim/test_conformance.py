"""Every simulated endpoint, in every scope, answers with GitHub's documented bodies, both at
the root (api.github.com's form) and under /api/v3 (GitHub Enterprise Server's).

Each answer's body is validated against the schema GitHub's OpenAPI description gives for that
operation and status (basic-error for GitHub's common error answers it does not list).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from tests.fixtures.ghsim import Ghsim
from tests.ghsim.openapi import response_validator

RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-used",
    "x-ratelimit-reset",
    "x-ratelimit-resource",
)


@dataclass(frozen=True)
class Scope:
    template: str  # GitHub's path template prefix
    prefix: str  # the same, filled in

    def runners(self, suffix: str = "") -> tuple[str, str]:
        """(template, concrete path) of an endpoint under actions/runners."""
        tail = f"/actions/runners{suffix}"
        return self.template + tail, self.prefix + tail


SCOPES = [
    Scope("/repos/{owner}/{repo}", "/repos/acme/app"),
    Scope("/orgs/{org}", "/orgs/acme"),
    Scope("/enterprises/{enterprise}", "/enterprises/acme-corp"),
]


# Where the API lives: api.github.com's form, and GitHub Enterprise Server's.
API_BASES = {"api.github.com": "", "ghes": "/api/v3"}
with_api_bases = pytest.mark.parametrize("base", API_BASES.values(), ids=API_BASES.keys())


def api(ghsim: Ghsim, base: str, **kwargs: object) -> httpx.Client:
    """A client on the API at ``base`` that sends the PAT (unless headers say otherwise)."""
    kwargs.setdefault("headers", ghsim.auth_headers)
    return httpx.Client(base_url=ghsim.url + base, **kwargs)


def conforms(answer: httpx.Response, method: str, template: str, status: int) -> dict:
    """Assert the status, the documented body and the rate-limit headers; return the body."""
    assert answer.status_code == status, answer.text
    for header in RATE_LIMIT_HEADERS:
        assert header in answer.headers, f"{header} missing from {method} {template}"
    if status == 204:
        assert answer.content == b""
        return {}
    body = answer.json()
    response_validator(method, template, status).validate(body)
    if status >= 400:
        assert body["message"] and body["documentation_url"].startswith("https://docs.github.com")
    return body


def jit_body(name: str, **changes: object) -> dict:
    return {"name": name, "runner_group_id": 1, "labels": ["linux", "x64"], **changes}


@with_api_bases
@pytest.mark.parametrize("scope", SCOPES, ids=lambda scope: scope.prefix.split("/")[1])
def test_runner_endpoints_answer_as_documented(ghsim: Ghsim, scope: Scope, base: str) -> None:
    jit_template, jit_path = scope.runners("/generate-jitconfig")
    list_template, list_path = scope.runners()
    one_template, _ = scope.runners("/{runner_id}")
    with api(ghsim, base) as http:
        created = [
            conforms(http.post(jit_path, json=jit_body(f"r-{i}")), "POST", jit_template, 201)
            for i in range(3)
        ]
        runner = created[0]["runner"]
        assert (runner["status"], runner["busy"]) == ("offline", False)
        assert created[0]["encoded_jit_config"]

        conforms(http.post(jit_path, json=jit_body("r-0")), "POST", jit_template, 409)
        conforms(http.post(jit_path, json={"name": "r-9"}), "POST", jit_template, 422)
        conforms(http.post(jit_path, json=jit_body("r-9", labels=[])), "POST", jit_template, 422)
        conforms(
            http.post(jit_path, json=jit_body("r-9", runner_group_id=999)),
            "POST",
            jit_template,
            404,
        )

        first = http.get(list_path, params={"per_page": 2})
        page = conforms(first, "GET", list_template, 200)
        assert page["total_count"] == 3
        assert [r["name"] for r in page["runners"]] == ["r-0", "r-1"]
        assert 'rel="next"' in first.headers["link"]
        assert first.links["next"]["url"].startswith(f"{ghsim.url}{base}{list_path}?")
        second = http.get(first.links["next"]["url"])
        assert [r["name"] for r in conforms(second, "GET", list_template, 200)["runners"]] == [
            "r-2"
        ]
        by_name = conforms(http.get(list_path, params={"name": "r-1"}), "GET", list_template, 200)
        assert [r["name"] for r in by_name["runners"]] == ["r-1"]

        runner_path = f"{list_path}/{runner['id']}"
        assert conforms(http.get(runner_path), "GET", one_template, 200)["name"] == "r-0"
        conforms(http.get(f"{list_path}/987654"), "GET", one_template, 404)

        ghsim.admin.set_runner_state(runner["id"], "busy")
        conforms(http.delete(runner_path), "DELETE", one_template, 422)
        ghsim.admin.set_runner_state(runner["id"], "idle")
        conforms(http.delete(runner_path), "DELETE", one_template, 204)
        conforms(http.delete(runner_path), "DELETE", one_template, 404)

        for suffix in ("/registration-token", "/remove-token"):
            template, path = scope.runners(suffix)
            token = conforms(http.post(path), "POST", template, 201)
            assert token["token"] and token["expires_at"]

    with api(ghsim, base, headers={"Authorization": "Bearer nope"}) as stranger:
        conforms(stranger.get(list_path), "GET", list_template, 401)


def test_concurrent_registrations_of_one_name_create_one_runner(ghsim: Ghsim) -> None:
    _, path = SCOPES[1].runners("/generate-jitconfig")
    with ghsim.http() as http, ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: http.post(path, json=jit_body("same")), range(10)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9
    assert [r["name"] for r in ghsim.admin.registrations()] == ["same"]


def test_page_size_is_capped_at_100_and_must_be_positive(ghsim: Ghsim) -> None:
    template, path = SCOPES[0].runners()
    with ghsim.http() as http:
        assert http.get(path, params={"per_page": 500}).status_code == 200
        conforms(http.get(path, params={"per_page": 0}), "GET", template, 422)


@with_api_bases
def test_installation_token_exchange_answers_as_documented(ghsim: Ghsim, base: str) -> None:
    app = ghsim.app
    template = "/app/installations/{installation_id}/access_tokens"
    with api(ghsim, base, headers={}) as http:
        as_app = {"Authorization": f"Bearer {app.jwt()}"}
        path = f"/app/installations/{app.installation_id}/access_tokens"
        token = conforms(http.post(path, headers=as_app), "POST", template, 201)
        assert token["token"].startswith("ghs_")
        conforms(
            http.post("/app/installations/1/access_tokens", headers=as_app), "POST", template, 404
        )
        conforms(http.post(path, headers=ghsim.auth_headers), "POST", template, 401)


@with_api_bases
def test_rate_limit_status_answers_as_documented(ghsim: Ghsim, base: str) -> None:
    with api(ghsim, base) as http:
        body = conforms(http.get("/rate_limit"), "GET", "/rate_limit", 200)
    assert body["resources"]["core"]["limit"] == 5000
    assert body["resources"]["actions_runner_registration"]["limit"] == 10_000


@with_api_bases
def test_rate_limit_refusals_answer_with_githubs_error_body(ghsim: Ghsim, base: str) -> None:
    template, path = SCOPES[0].runners()
    jit_template, jit_path = SCOPES[0].runners("/generate-jitconfig")
    with api(ghsim, base) as http:
        ghsim.admin.configure(rate_limit=1)
        conforms(http.get(path), "GET", template, 200)
        conforms(http.get(path), "GET", template, 403)
        ghsim.admin.configure(
            rate_limit=100, secondary_jitconfig_per_minute=1, secondary_status=429
        )
        conforms(http.post(jit_path, json=jit_body("a")), "POST", jit_template, 201)
        conforms(http.post(jit_path, json=jit_body("b")), "POST", jit_template, 429)


def test_both_forms_are_one_github(ghsim: Ghsim) -> None:
    _, jit_path = SCOPES[1].runners("/generate-jitconfig")
    with api(ghsim, "/api/v3") as ghes, api(ghsim, "") as dotcom:
        conforms(
            ghes.post(jit_path, json=jit_body("r-1")),
            "POST",
            SCOPES[1].runners("/generate-jitconfig")[0],
            201,
        )
        assert dotcom.post(jit_path, json=jit_body("r-1")).status_code == 409
        # One budget: the second call is the credential's second, whichever form it used.
        assert dotcom.get("/rate_limit").json()["resources"]["core"]["used"] == 2


def test_the_admin_api_is_only_at_the_root(ghsim: Ghsim) -> None:
    with api(ghsim, "/api/v3") as ghes:
        assert ghes.get("/_sim/registrations").status_code == 404
    assert httpx.get(f"{ghsim.url}/_sim/registrations").status_code == 200
