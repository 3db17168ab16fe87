"""Credentials from a Secret, their reprs, and the installation-token cache's refresh logic."""

from __future__ import annotations

import threading
import time

import jwt
import pytest

from provisioner.github.auth import (
    AppCredentials,
    InstallationToken,
    InstallationTokenProvider,
    InvalidCredentials,
    PatCredentials,
    app_jwt,
    credentials_from_secret_data,
    parse_installation_token,
)
from provisioner.github.errors import InvalidGitHubResponse
from tests.fixtures.ghsim import GhsimApp


def app_secret(app: GhsimApp) -> dict[str, bytes]:
    return {
        "github_app_id": str(app.app_id).encode(),
        "github_app_installation_id": str(app.installation_id).encode(),
        "github_app_private_key": app.private_key_pem.encode(),
    }


def test_pat_from_secret_bytes_and_repr_hides_it() -> None:
    credentials = credentials_from_secret_data({"github_token": b"ghp_secret123\n"})
    assert credentials == PatCredentials("ghp_secret123")
    assert "ghp_secret123" not in repr(credentials)
    assert "github_token" in credentials.describe()


def test_app_from_secret_and_repr_hides_the_key(ghsim_app: GhsimApp) -> None:
    credentials = credentials_from_secret_data(app_secret(ghsim_app))
    assert isinstance(credentials, AppCredentials)
    assert (credentials.app_id, credentials.installation_id) == (4242, 777)
    assert "PRIVATE KEY" not in repr(credentials)
    assert credentials.describe() == "the GitHub App 4242 installation 777"


@pytest.mark.parametrize(
    "missing", ["github_app_id", "github_app_installation_id", "github_app_private_key"]
)
def test_app_secret_missing_a_key_names_it(ghsim_app: GhsimApp, missing: str) -> None:
    data = app_secret(ghsim_app)
    del data[missing]
    with pytest.raises(InvalidCredentials) as raised:
        credentials_from_secret_data(data)
    assert raised.value.key == missing
    assert f"lacks {missing}" in str(raised.value)


def test_empty_secret_says_what_to_set() -> None:
    with pytest.raises(InvalidCredentials, match="github_token") as raised:
        credentials_from_secret_data({"other": "x", "github_token": "  "})
    assert "github_app_private_key" in str(raised.value)


def test_bad_app_values_are_named_without_the_key(ghsim_app: GhsimApp) -> None:
    with pytest.raises(InvalidCredentials, match="github_app_id must be a positive integer"):
        credentials_from_secret_data({**app_secret(ghsim_app), "github_app_id": "abc"})
    not_a_key = "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0\n-----END RSA PRIVATE KEY-----"
    with pytest.raises(InvalidCredentials) as raised:
        credentials_from_secret_data({**app_secret(ghsim_app), "github_app_private_key": not_a_key})
    assert raised.value.key == "github_app_private_key"
    assert "c2VjcmV0" not in str(raised.value)


def test_app_jwt_claims(ghsim_app: GhsimApp) -> None:
    credentials = credentials_from_secret_data(app_secret(ghsim_app))
    assert isinstance(credentials, AppCredentials)
    token = app_jwt(credentials, now=1_000_000.0)
    claims = jwt.decode(
        token, ghsim_app.public_key_pem, algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims == {"iss": "4242", "iat": 1_000_000 - 60, "exp": 1_000_000 + 540}


def test_installation_token_refreshes_a_margin_before_expiry() -> None:
    token = parse_installation_token({"token": "t", "expires_at": "1970-01-01T01:00:00Z"}, 0.0)
    assert token.expires_at == 3600.0 and token.refresh_at == 3300.0
    # A short-lived token is refreshed halfway, not at once.
    short = parse_installation_token({"token": "t", "expires_at": "1970-01-01T00:00:20Z"}, 0.0)
    assert short.refresh_at == 10.0
    assert "'t'" not in repr(token)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_at": "1970-01-01T01:00:00Z"}, "token"),
        ({"token": "t"}, "expires_at"),
        ([], "token"),
    ],
)
def test_installation_token_answer_lacking_a_field(body: object, field: str) -> None:
    with pytest.raises(InvalidGitHubResponse) as raised:
        parse_installation_token(body, 0.0)
    assert raised.value.field == field


class FakeExchange:
    """Stands in for the HTTP exchange: counts calls and hands out numbered tokens."""

    def __init__(self, lifetime: float, clock: list[float], delay: float = 0.0) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.clock = clock
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, app_jwt: str) -> InstallationToken:
        with self._lock:
            self.calls += 1
            number = self.calls
        time.sleep(self.delay)
        now = self.clock[0]
        return InstallationToken(f"token-{number}", now + self.lifetime, now + self.lifetime - 300)


def provider(ghsim_app: GhsimApp, exchange: FakeExchange, clock: list[float]):
    credentials = credentials_from_secret_data(app_secret(ghsim_app))
    assert isinstance(credentials, AppCredentials)
    return InstallationTokenProvider(credentials, exchange, lambda: clock[0])


def test_provider_caches_until_refresh_time(ghsim_app: GhsimApp) -> None:
    clock = [1000.0]
    exchange = FakeExchange(3600, clock)
    tokens = provider(ghsim_app, exchange, clock)
    assert tokens.token() == "token-1"
    clock[0] += 3299
    assert tokens.token() == "token-1"
    clock[0] += 1
    assert tokens.token() == "token-2"
    assert exchange.calls == 2


def test_provider_invalidate_once_for_many_rejections(ghsim_app: GhsimApp) -> None:
    clock = [1000.0]
    exchange = FakeExchange(3600, clock)
    tokens = provider(ghsim_app, exchange, clock)
    rejected = tokens.token()
    tokens.invalidate(rejected)
    fresh = tokens.token()
    tokens.invalidate(rejected)  # a slower thread reporting the same old token
    assert tokens.token() == fresh == "token-2"
    assert exchange.calls == 2


def test_provider_one_refresh_for_concurrent_callers(ghsim_app: GhsimApp) -> None:
    clock = [1000.0]
    exchange = FakeExchange(3600, clock, delay=0.05)
    tokens = provider(ghsim_app, exchange, clock)
    start = threading.Barrier(50)
    seen: list[str] = []

    def ask() -> None:
        start.wait()
        seen.append(tokens.token())

    threads = [threading.Thread(target=ask) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert exchange.calls == 1 and set(seen) == {"token-1"} and len(seen) == 50
