"""Pure parsing: scope URLs, runner bodies, rate-limit headers and how long to wait."""

from __future__ import annotations

import pytest

from provisioner.github import GitHubScope, JitConfig, RateLimitInfo, Runner
from provisioner.github.errors import InvalidGitHubResponse
from provisioner.github.models import (
    InvalidScope,
    is_rate_limited,
    parse_jit_config,
    parse_rate_limit,
    parse_runner,
    parse_runner_page,
    retry_after_seconds,
)

RUNNER_BODY = {
    "id": 23,
    "name": "r-1",
    "os": "linux",
    "status": "offline",
    "busy": False,
    "labels": [{"id": 1, "name": "self-hosted", "type": "read-only"}, {"name": "gpu"}],
}


@pytest.mark.parametrize(
    ("url", "scope", "api_path"),
    [
        (
            "https://github.com/acme/app",
            GitHubScope("repository", "acme", "app"),
            "/repos/acme/app",
        ),
        ("https://github.com/acme/app.git/", GitHubScope("repository", "acme", "app"), None),
        ("https://github.com/acme", GitHubScope("organization", "acme"), "/orgs/acme"),
        (
            "https://ghe.corp/acme/",
            GitHubScope("organization", "acme", host="ghe.corp"),
            "/orgs/acme",
        ),
        (
            "https://github.com/enterprises/big",
            GitHubScope("enterprise", "big"),
            "/enterprises/big",
        ),
    ],
)
def test_scope_parse(url: str, scope: GitHubScope, api_path: str | None) -> None:
    parsed = GitHubScope.parse(url)
    assert parsed == scope
    if api_path:
        assert parsed.api_path == api_path


@pytest.mark.parametrize(
    "url", ["https://github.com", "github.com/acme/app", "https://github.com/a/b/c", "ftp://x/a"]
)
def test_scope_parse_refuses_what_names_no_scope(url: str) -> None:
    with pytest.raises(InvalidScope, match="githubConfigUrl") as raised:
        GitHubScope.parse(url)
    assert "https://github.com/OWNER/REPO" in str(raised.value)


def test_scope_str_names_kind_and_name() -> None:
    assert str(GitHubScope.parse("https://github.com/acme/app")) == "repository acme/app"
    assert str(GitHubScope.parse("https://github.com/enterprises/e")) == "enterprise e"


def test_parse_runner_keeps_label_names() -> None:
    assert parse_runner(RUNNER_BODY, "get-runner") == Runner(
        23, "r-1", "linux", "offline", False, ("self-hosted", "gpu")
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "23"}, "id"),
        ({"id": True}, "id"),
        ({"busy": None}, "busy"),
        ({"labels": [{"id": 1}]}, "labels[0].name"),
        ({"name": None}, "name"),
    ],
)
def test_parse_runner_names_the_bad_field(change: dict, field: str) -> None:
    with pytest.raises(InvalidGitHubResponse) as raised:
        parse_runner({**RUNNER_BODY, **change}, "get-runner")
    assert raised.value.field == field
    assert field in str(raised.value) and "get-runner" in str(raised.value)


def test_parse_jit_config_names_missing_fields() -> None:
    with pytest.raises(InvalidGitHubResponse) as raised:
        parse_jit_config({"runner": RUNNER_BODY}, "generate-jitconfig")
    assert raised.value.field == "encoded_jit_config"
    with pytest.raises(InvalidGitHubResponse) as raised:
        parse_jit_config({"encoded_jit_config": "x"}, "generate-jitconfig")
    assert raised.value.field == "runner"
    with pytest.raises(InvalidGitHubResponse) as raised:
        parse_jit_config({"runner": {**RUNNER_BODY, "os": 1}, "encoded_jit_config": "x"}, "g")
    assert raised.value.field == "runner.os"


def test_jit_config_repr_hides_the_config() -> None:
    jit = parse_jit_config(
        {"runner": RUNNER_BODY, "encoded_jit_config": "c2VjcmV0LWppdA=="}, "generate-jitconfig"
    )
    assert isinstance(jit, JitConfig) and jit.encoded_jit_config == "c2VjcmV0LWppdA=="
    assert "c2VjcmV0LWppdA==" not in repr(jit) and "c2VjcmV0LWppdA==" not in str(jit)
    assert "r-1" in repr(jit)


def test_parse_runner_page_reads_total_and_runners() -> None:
    runners, total = parse_runner_page({"total_count": 7, "runners": [RUNNER_BODY]}, "list")
    assert total == 7 and [r.id for r in runners] == [23]
    with pytest.raises(InvalidGitHubResponse) as raised:
        parse_runner_page({"runners": []}, "list-runners")
    assert raised.value.field == "total_count"
    with pytest.raises(InvalidGitHubResponse) as raised:
        parse_runner_page({"total_count": 1, "runners": [{**RUNNER_BODY, "id": None}]}, "list")
    assert raised.value.field == "runners[0].id"


def test_parse_rate_limit_headers() -> None:
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4990",
        "x-ratelimit-used": "10",
        "x-ratelimit-reset": "1700000000",
        "x-ratelimit-resource": "actions_runner_registration",
    }
    assert parse_rate_limit(headers) == RateLimitInfo(
        5000, 4990, 10, 1700000000, "actions_runner_registration"
    )


def test_parse_rate_limit_defaults_and_absence() -> None:
    partial = {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "59", "x-ratelimit-reset": "9"}
    assert parse_rate_limit(partial) == RateLimitInfo(60, 59, 1, 9, "core")
    assert parse_rate_limit({}) is None
    assert parse_rate_limit({**partial, "x-ratelimit-remaining": "many"}) is None


def test_retry_after_prefers_the_header() -> None:
    headers = {"retry-after": "7", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1300"}
    assert retry_after_seconds(headers, now=1000.0) == 7.0


def test_retry_after_accepts_an_http_date() -> None:
    headers = {"retry-after": "Thu, 01 Jan 1970 00:16:50 GMT"}  # epoch 1010
    assert retry_after_seconds(headers, now=1000.0) == pytest.approx(10.0)


def test_retry_after_waits_for_the_reset_when_nothing_remains() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1300"}
    assert retry_after_seconds(headers, now=1000.0) == 300.0
    assert retry_after_seconds(headers, now=2000.0) == 0.0


def test_retry_after_defaults_to_a_minute() -> None:
    assert retry_after_seconds({"x-ratelimit-remaining": "12"}, now=0) == 60.0
    assert retry_after_seconds({"retry-after": "soon"}, now=0) == 60.0


def test_rate_limit_signals_on_403() -> None:
    assert is_rate_limited(429, {}, "")
    assert is_rate_limited(403, {"retry-after": "1"}, "")
    assert is_rate_limited(403, {"x-ratelimit-remaining": "0"}, "")
    assert is_rate_limited(403, {}, "You have exceeded a secondary rate limit.")
    assert not is_rate_limited(403, {"x-ratelimit-remaining": "10"}, "Resource not accessible")
    assert not is_rate_limited(500, {"retry-after": "1"}, "")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://github.com/../octo-repo", "'..'"),
        ("https://github.com/acme/./x", "'.'"),
        ("https://github.com/enterprises/", "names no enterprise"),
        ("https://github.com/enterprises", "names no enterprise"),
    ],
)
def test_scope_parse_refuses_dot_segments_and_a_bare_enterprises(url: str, says: str) -> None:
    with pytest.raises(InvalidScope, match="githubConfigUrl") as raised:
        GitHubScope.parse(url)
    assert says in str(raised.value)


def test_scope_remembers_its_host_for_github_enterprise_server() -> None:
    scope = GitHubScope.parse("http://GHE.example.net:8080/acme")
    assert (scope.kind, scope.owner, scope.host, scope.scheme) == (
        "organization",
        "acme",
        "ghe.example.net:8080",
        "http",
    )
