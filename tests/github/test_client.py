"""The GitHub client against the simulator running as a real server on a free port."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from provisioner.devenv.procs import free_port
from provisioner.github import GitHubClient, GitHubScope, RateLimitInfo, github_http
from provisioner.github.auth import AppCredentials, PatCredentials
from provisioner.github.errors import (
    Conflict,
    GitHubError,
    GitHubUnavailable,
    InvalidGitHubResponse,
    NotFound,
    RateLimited,
    RunnerBusy,
    ServerError,
    Unauthorized,
)
from tests.fixtures.ghsim import Ghsim

REPO = GitHubScope.parse("https://github.com/acme/app")
LABELS = ["linux", "x64"]
LIST_REPO = "GET /repos/{owner}/{repo}/actions/runners"


@pytest.fixture
def rate_limits() -> list[RateLimitInfo]:
    return []


@pytest.fixture
def client(ghsim: Ghsim, rate_limits: list[RateLimitInfo]) -> Iterator[GitHubClient]:
    with GitHubClient(
        ghsim.url, PatCredentials(ghsim.token), timeout=2.0, on_rate_limit=rate_limits.append
    ) as github:
        yield github


def app_credentials(ghsim: Ghsim, installation_id: int | None = None) -> AppCredentials:
    return AppCredentials(
        ghsim.app.app_id, installation_id or ghsim.app.installation_id, ghsim.app.private_key_pem
    )


@pytest.fixture
def app_client(ghsim: Ghsim) -> Iterator[GitHubClient]:
    with GitHubClient(ghsim.url, app_credentials(ghsim), timeout=5.0) as github:
        yield github


def register(client: GitHubClient, name: str, scope: GitHubScope = REPO):
    return client.generate_jitconfig(scope, name, 1, LABELS)


def test_register_find_get_delete(client: GitHubClient, ghsim: Ghsim) -> None:
    jit = register(client, "r-1")
    assert jit.runner.name == "r-1" and jit.encoded_jit_config
    assert {"linux", "x64", "self-hosted"} <= set(jit.runner.labels)
    assert jit.encoded_jit_config not in repr(jit)
    assert client.get_runner(REPO, jit.runner.id) == jit.runner
    assert client.find_runner_by_name(REPO, "r-1") == jit.runner
    assert client.find_runner_by_name(REPO, "r-2") is None
    client.delete_runner(REPO, jit.runner.id)
    assert ghsim.runner_names() == set()
    with pytest.raises(NotFound, match=f"runner {jit.runner.id}"):
        client.get_runner(REPO, jit.runner.id)
    with pytest.raises(NotFound):
        client.delete_runner(REPO, jit.runner.id)


@pytest.mark.parametrize("url", ["https://github.com/acme", "https://github.com/enterprises/big"])
def test_org_and_enterprise_scopes(client: GitHubClient, url: str) -> None:
    scope = GitHubScope.parse(url)
    jit = register(client, "scoped", scope)
    assert [r.name for r in client.list_runners(scope)] == ["scoped"]
    assert client.list_runners(REPO) == []
    client.delete_runner(scope, jit.runner.id)


def test_duplicate_name_is_a_conflict(client: GitHubClient) -> None:
    register(client, "twin")
    with pytest.raises(Conflict, match="twin") as raised:
        register(client, "twin")
    assert raised.value.status == 409


def test_unknown_runner_group_is_not_found(client: GitHubClient) -> None:
    with pytest.raises(NotFound):
        client.generate_jitconfig(REPO, "r", 999, LABELS)


def test_delete_busy_runner_is_refused(client: GitHubClient, ghsim: Ghsim) -> None:
    runner = register(client, "worker").runner
    ghsim.admin.set_runner_state(runner.id, "busy")
    assert client.get_runner(REPO, runner.id).busy
    with pytest.raises(RunnerBusy, match="running a job"):
        client.delete_runner(REPO, runner.id)
    assert ghsim.runner_names() == {"worker"}
    ghsim.admin.set_runner_state(runner.id, "idle")
    client.delete_runner(REPO, runner.id)
    assert ghsim.runner_names() == set()


def test_list_runners_reads_every_page(client: GitHubClient, ghsim: Ghsim) -> None:
    names = {f"p-{i:03d}" for i in range(105)}
    for name in names:
        register(client, name)
    assert {r.name for r in client.list_runners(REPO)} == names
    assert ghsim.admin.counters()["calls"][LIST_REPO] == {"200": 2}
    # The name filter answers from one page, even for a runner on the second.
    assert client.find_runner_by_name(REPO, "p-104").name == "p-104"


def test_one_page_of_runners_comes_with_the_scopes_total(
    client: GitHubClient, ghsim: Ghsim
) -> None:
    for i in range(105):
        register(client, f"p-{i:03d}")
    runners, total = client.list_runners_page(REPO, 2)
    assert ([r.name for r in runners], total) == (
        ["p-100", "p-101", "p-102", "p-103", "p-104"],
        105,
    )
    assert client.list_runners_page(REPO, 3) == ([], 105)


def test_many_threads_share_one_client(client: GitHubClient, ghsim: Ghsim) -> None:
    names = [f"t-{i}" for i in range(40)]
    run_concurrently([lambda n=name: register(client, n) for name in names])
    assert ghsim.runner_names() == set(names)


def test_clients_of_different_credentials_share_one_pool(ghsim: Ghsim) -> None:
    with github_http(ghsim.url, timeout=5.0) as http:
        good = GitHubClient(ghsim.url, PatCredentials(ghsim.token), timeout=5.0, http=http)
        wrong = GitHubClient(ghsim.url, PatCredentials("ghp_not_accepted"), timeout=5.0, http=http)
        register(good, "pooled-1")
        # Each request carries its own client's credential, not the last one used on the pool.
        with pytest.raises(Unauthorized):
            wrong.generate_jitconfig(REPO, "pooled-2", 1, LABELS)
        # Closing a client that shares the pool leaves the pool to its owner.
        wrong.close()
        register(good, "pooled-3")
    assert ghsim.runner_names() == {"pooled-1", "pooled-3"}


def test_wrong_pat_names_the_secret_key(ghsim: Ghsim) -> None:
    secret = "ghp_wrong_but_secret_value"
    with (
        GitHubClient(ghsim.url, PatCredentials(secret)) as github,
        pytest.raises(Unauthorized) as raised,
    ):
        github.list_runners(REPO)
    message = str(raised.value)
    assert "GitHub rejected the personal access token from Secret key github_token" in message
    assert "Bad credentials" in message and secret not in message


def test_wrong_app_key_names_the_app(ghsim: Ghsim) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    credentials = AppCredentials(ghsim.app.app_id, ghsim.app.installation_id, pem)
    with GitHubClient(ghsim.url, credentials) as github, pytest.raises(Unauthorized) as raised:
        github.generate_jitconfig(REPO, "r", 1, LABELS)
    message = str(raised.value)
    assert "GitHub rejected the GitHub App 4242 installation 777" in message
    assert "PRIVATE KEY" not in message
    assert ghsim.runner_names() == set()


def test_unknown_installation_is_named(ghsim: Ghsim) -> None:
    with (
        GitHubClient(ghsim.url, app_credentials(ghsim, installation_id=9999)) as github,
        pytest.raises(NotFound, match="installation 9999; check github_app_installation_id"),
    ):
        github.list_runners(REPO)


def test_app_token_fetched_once_for_50_concurrent_callers(
    app_client: GitHubClient, ghsim: Ghsim
) -> None:
    names = [f"app-{i}" for i in range(50)]
    run_concurrently([lambda n=name: register(app_client, n) for name in names])
    assert ghsim.runner_names() == set(names)
    assert ghsim.admin.counters()["access_token_requests"] == 1


def test_app_token_refreshed_before_it_expires(ghsim: Ghsim) -> None:
    ghsim.admin.configure(installation_token_ttl_s=2)
    with GitHubClient(ghsim.url, app_credentials(ghsim)) as github:
        github.list_runners(REPO)
        github.list_runners(REPO)
        assert ghsim.admin.counters()["access_token_requests"] == 1
        time.sleep(1.1)  # past the refresh point (half of a 2 s token), before its expiry
        github.list_runners(REPO)
    counters = ghsim.admin.counters()
    assert counters["access_token_requests"] == 2
    assert counters["calls"][LIST_REPO] == {"200": 3}


def test_revoked_app_token_is_replaced_once(app_client: GitHubClient, ghsim: Ghsim) -> None:
    app_client.list_runners(REPO)
    ghsim.admin.reset()  # forgets every installation token it issued
    run_concurrently([lambda: app_client.list_runners(REPO) for _ in range(10)])
    counters = ghsim.admin.counters()
    assert counters["access_token_requests"] == 1
    assert counters["calls"][LIST_REPO]["200"] == 10


def test_server_error(client: GitHubClient, ghsim: Ghsim) -> None:
    ghsim.admin.configure(error_rate=1.0, error_status=503)
    with pytest.raises(ServerError) as raised:
        client.list_runners(REPO)
    assert raised.value.status == 503


def test_primary_rate_limit_waits_for_the_reset(
    client: GitHubClient, ghsim: Ghsim, rate_limits: list[RateLimitInfo]
) -> None:
    ghsim.admin.configure(rate_limit=2, rate_limit_window_s=30, rate_limit_status=403)
    client.list_runners(REPO)
    client.list_runners(REPO)
    with pytest.raises(RateLimited) as raised:
        client.list_runners(REPO)
    assert raised.value.status == 403
    assert 25 <= raised.value.retry_after <= 31
    assert rate_limits[-1].remaining == 0
    assert raised.value.retry_after == pytest.approx(rate_limits[-1].reset - time.time(), abs=2)


def test_secondary_rate_limit_honours_retry_after(client: GitHubClient, ghsim: Ghsim) -> None:
    ghsim.admin.configure(secondary_jitconfig_per_minute=1, secondary_status=429)
    register(client, "first")
    with pytest.raises(RateLimited, match="secondary rate limit") as raised:
        register(client, "second")
    assert raised.value.status == 429
    assert 50 <= raised.value.retry_after <= 61
    assert ghsim.runner_names() == {"first"}


def test_on_rate_limit_gets_every_answers_headers(
    client: GitHubClient, ghsim: Ghsim, rate_limits: list[RateLimitInfo]
) -> None:
    runner = register(client, "r").runner
    client.get_runner(REPO, runner.id)
    with pytest.raises(Conflict):
        register(client, "r")
    # Runner registration spends the core budget, as GitHub reports it.
    assert [(i.resource, i.used, i.limit) for i in rate_limits] == [
        ("core", 1, 5000),
        ("core", 2, 5000),
        ("core", 3, 5000),
    ]
    assert all(i.remaining == i.limit - i.used and i.reset > time.time() for i in rate_limits)


def test_slow_answer_past_the_timeout_is_unavailable(ghsim: Ghsim) -> None:
    ghsim.admin.configure(slow_rate=1.0, slow_ms=5000, fault_endpoint="generate-jitconfig")
    with GitHubClient(ghsim.url, PatCredentials(ghsim.token), timeout=0.3) as github:
        with pytest.raises(GitHubUnavailable, match="may have taken effect"):
            register(github, "slow")
        # As on GitHub, the runner was registered although its answer never arrived.
        assert github.find_runner_by_name(REPO, "slow") is not None


def test_dropped_connection_is_unavailable(client: GitHubClient, ghsim: Ghsim) -> None:
    ghsim.admin.configure(drop_rate=1.0)
    with pytest.raises(GitHubUnavailable, match="connection to GitHub failed"):
        client.list_runners(REPO)


def test_nothing_listening_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        GitHubClient(url, PatCredentials("t"), timeout=1.0) as github,
        pytest.raises(GitHubUnavailable),
    ):
        github.list_runners(REPO)


def test_answers_that_do_not_parse_name_the_field(odd_github: str, client: GitHubClient) -> None:
    with GitHubClient(odd_github, PatCredentials("t")) as github:
        with pytest.raises(InvalidGitHubResponse) as raised:
            github.get_runner(REPO, 1)
        assert raised.value.field == "body"
        with pytest.raises(InvalidGitHubResponse) as raised:
            register(github, "r")
        assert raised.value.field == "encoded_jit_config"
        with pytest.raises(InvalidGitHubResponse) as raised:
            github.list_runners(REPO)
        assert raised.value.field == "runners[0].busy"


def test_no_secret_in_logs_or_errors(ghsim: Ghsim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    jit_configs: list[str] = []
    with GitHubClient(ghsim.url, app_credentials(ghsim)) as github:
        jit = register(github, "secret-run")
        jit_configs.append(jit.encoded_jit_config)
        for call in (
            lambda: register(github, "secret-run"),
            lambda: github.delete_runner(REPO, 999_999),
        ):
            with pytest.raises(GitHubError) as raised:
                call()
            messages.append(str(raised.value))
        logging.getLogger("test").info("%r %r %r", jit, github, github.credentials)
    with GitHubClient(ghsim.url, PatCredentials(ghsim.token)) as github:
        logging.getLogger("test").info("%r %r", github, github.credentials)
    ghsim.admin.configure(error_rate=1.0)
    with GitHubClient(ghsim.url, PatCredentials(ghsim.token)) as github:
        with pytest.raises(ServerError) as server_error:
            github.list_runners(REPO)
        messages.append(str(server_error.value))
    text = caplog.text + "\n".join(messages)
    assert "secret-run" in text  # the log really captured the reprs
    for secret in (ghsim.token, *jit_configs, "PRIVATE KEY", "ghs_"):
        assert secret not in text


@pytest.fixture(scope="module")
def odd_github() -> Iterator[str]:
    """A server that answers GitHub's paths with bodies GitHub would never send."""
    runner = {"id": 1, "name": "r", "os": "linux", "status": "online", "labels": []}
    bodies: dict[tuple[str, str], tuple[int, Any]] = {
        ("GET", "/repos/acme/app/actions/runners/1"): (200, "<html>oops</html>"),
        ("POST", "/repos/acme/app/actions/runners/generate-jitconfig"): (
            201,
            json.dumps({"runner": {**runner, "busy": False}}),
        ),
        ("GET", "/repos/acme/app/actions/runners"): (
            200,
            json.dumps({"total_count": 1, "runners": [runner]}),
        ),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            status, body = bodies[(self.command, self.path.split("?")[0])]
            data = body.encode()
            self.send_response(status)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_concurrently(calls: list[Callable[[], object]]) -> None:
    """Start every call at the same moment on its own thread; re-raise the first failure."""
    start = threading.Barrier(len(calls))
    failures: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        start.wait()
        try:
            call()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if failures:
        raise failures[0]


def test_a_rejected_credential_reports_no_quota(ghsim: Ghsim) -> None:
    # A 401 carries the anonymous caller's quota: reporting it as the credential's would
    # pause a budget that GitHub never counted against.
    seen: list[RateLimitInfo] = []
    with (
        GitHubClient(ghsim.url, PatCredentials("not-a-token"), on_rate_limit=seen.append) as github,
        pytest.raises(Unauthorized),
    ):
        register(github, "r")
    assert seen == []
