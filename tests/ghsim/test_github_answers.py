"""What GitHub answers before an endpoint does its work: trailing slashes, User-Agent, API
version, bodies that are not objects; and the headers every answer carries."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.fixtures.ghsim import Ghsim

RUNNERS = "/orgs/acme/actions/runners"
JIT = f"{RUNNERS}/generate-jitconfig"
RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-used",
    "x-ratelimit-reset",
    "x-ratelimit-resource",
)
JIT_BODY = {"name": "r-1", "runner_group_id": 1, "labels": ["linux"]}


def _carries_githubs_headers(answer: httpx.Response) -> None:
    for header in RATE_LIMIT_HEADERS:
        assert header in answer.headers, f"{header} missing from a {answer.status_code}"
    assert re.fullmatch(r"[0-9A-F]+(:[0-9A-F]+){4}", answer.headers["x-github-request-id"])


@pytest.mark.parametrize("prefix", ["", "/api/v3"], ids=["api.github.com", "ghes"])
def test_a_path_with_a_trailing_slash_is_not_found(ghsim: Ghsim, prefix: str) -> None:
    with ghsim.http() as http:
        answer = http.get(f"{prefix}{RUNNERS}/")
        assert http.get(prefix + RUNNERS).status_code == 200
    assert answer.status_code == 404
    assert answer.json()["message"] == "Not Found"
    _carries_githubs_headers(answer)


def test_a_request_without_a_user_agent_is_forbidden(ghsim: Ghsim) -> None:
    with ghsim.http() as http:
        # httpx sends its own User-Agent unless told not to.
        answer = http.get(RUNNERS, headers={"User-Agent": ""})
        assert http.get(RUNNERS).status_code == 200
    assert answer.status_code == 403
    assert "User-Agent" in answer.json()["message"]
    _carries_githubs_headers(answer)


@pytest.mark.parametrize("version", ["2022-11-28", "2026-03-10"])
def test_the_api_versions_github_has_are_served(ghsim: Ghsim, version: str) -> None:
    with ghsim.http() as http:
        answer = http.get(RUNNERS, headers={"X-GitHub-Api-Version": version})
    assert answer.status_code == 200


@pytest.mark.parametrize("version", ["2021-01-01", "latest", ""])
def test_an_api_version_that_does_not_exist_is_a_bad_request(ghsim: Ghsim, version: str) -> None:
    with ghsim.http() as http:
        answer = http.post(JIT, json=JIT_BODY, headers={"X-GitHub-Api-Version": version})
    assert answer.status_code == 400
    assert "X-GitHub-Api-Version" in answer.json()["message"]
    _carries_githubs_headers(answer)
    assert ghsim.runner_names() == set()


@pytest.mark.parametrize("body", [b"[1, 2]", b'"name"', b"42", b"null"])
def test_a_body_that_is_not_a_json_object_is_a_bad_request(ghsim: Ghsim, body: bytes) -> None:
    with ghsim.http() as http:
        answer = http.post(JIT, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["message"] == "Body should be a JSON object"
    _carries_githubs_headers(answer)


def test_a_body_that_is_not_json_is_a_bad_request(ghsim: Ghsim) -> None:
    with ghsim.http() as http:
        answer = http.post(JIT, content=b"{name", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["message"] == "Problems parsing JSON"


def test_unknown_routes_spend_from_the_callers_budget_and_carry_the_headers(ghsim: Ghsim) -> None:
    with ghsim.http() as http:
        unknown = http.get("/orgs/acme/actions/nothing-here")
        wrong_method = http.put(RUNNERS, json={})
        known = http.get(RUNNERS)
    for answer in (unknown, wrong_method):
        assert answer.status_code == 404
        _carries_githubs_headers(answer)
    assert unknown.headers["x-ratelimit-limit"] == "5000"
    assert known.headers["x-ratelimit-used"] == "3"


def test_unknown_routes_check_the_credential_first(ghsim: Ghsim) -> None:
    stranger = httpx.get(f"{ghsim.url}/nothing-here")
    assert stranger.status_code == 404
    assert stranger.headers["x-ratelimit-limit"] == "60"
    bad = httpx.get(f"{ghsim.url}/nothing-here", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    _carries_githubs_headers(bad)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", RUNNERS),
        ("POST", JIT),
        ("GET", f"{RUNNERS}/999"),
        ("DELETE", f"{RUNNERS}/999"),
        ("GET", "/rate_limit"),
    ],
)
def test_every_answer_carries_a_request_id_and_the_rate_limit(
    ghsim: Ghsim, method: str, path: str
) -> None:
    with ghsim.http() as http:
        answers = [http.request(method, path, json=JIT_BODY if method == "POST" else None)]
    answers.append(httpx.request(method, ghsim.url + path))  # no credential: 401
    for answer in answers:
        _carries_githubs_headers(answer)
    ids = {answer.headers["x-github-request-id"] for answer in answers}
    assert len(ids) == len(answers)


def test_the_projects_client_headers_are_accepted(ghsim: Ghsim) -> None:
    headers = {
        **ghsim.auth_headers,
        "User-Agent": "runner-provisioner",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    assert httpx.get(ghsim.url + RUNNERS, headers=headers).status_code == 200
