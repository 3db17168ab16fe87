"""PATs and GitHub App authentication as GitHub checks them."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fixtures.ghsim import Ghsim

RUNNERS = "/orgs/acme/actions/runners"


def _get(ghsim: Ghsim, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.get(ghsim.url + RUNNERS, headers=headers)


def _access_token(ghsim: Ghsim, app_jwt: str) -> httpx.Response:
    path = f"/app/installations/{ghsim.app.installation_id}/access_tokens"
    return httpx.post(ghsim.url + path, headers={"Authorization": f"Bearer {app_jwt}"})


@pytest.mark.parametrize("scheme", ["Bearer", "token"])
def test_a_configured_pat_is_accepted_with_either_scheme(ghsim: Ghsim, scheme: str) -> None:
    assert _get(ghsim, f"{scheme} {ghsim.token}").status_code == 200


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Requires authentication"),
        ("Bearer ghp_not_a_token_we_know", "Bad credentials"),
        ("Basic dXNlcjpwYXNz", "Bad credentials"),
    ],
)
def test_a_missing_or_unknown_credential_gets_401(
    ghsim: Ghsim, authorization: str | None, message: str
) -> None:
    answer = _get(ghsim, authorization)
    assert answer.status_code == 401
    assert answer.json()["message"] == message
    assert answer.json()["documentation_url"].startswith("https://docs.github.com")


def test_an_app_jwt_buys_an_installation_token_that_works(ghsim: Ghsim) -> None:
    answer = _access_token(ghsim, ghsim.app.jwt())
    assert answer.status_code == 201
    token = answer.json()["token"]
    assert _get(ghsim, f"token {token}").status_code == 200
    assert ghsim.admin.counters()["access_token_requests"] == 1


def test_the_app_jwt_itself_cannot_call_runner_endpoints(ghsim: Ghsim) -> None:
    assert _get(ghsim, f"Bearer {ghsim.app.jwt()}").status_code == 401


def test_jwts_github_would_refuse_get_401(ghsim: Ghsim) -> None:
    now = int(time.time())
    app = ghsim.app
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    refused = {
        "exp too far ahead": app.jwt(lifetime_s=11 * 60),
        "expired": app.jwt(lifetime_s=-10, issued_ago_s=120),
        "another app": jwt.encode(
            {"iss": "99", "iat": now, "exp": now + 300}, app.private_key_pem, algorithm="RS256"
        ),
        "another key": jwt.encode(
            {"iss": str(app.app_id), "iat": now, "exp": now + 300}, other_pem, algorithm="RS256"
        ),
        "HS256": jwt.encode(
            {"iss": str(app.app_id), "iat": now, "exp": now + 300}, "secret" * 6, algorithm="HS256"
        ),
    }
    for case, app_jwt in refused.items():
        answer = _access_token(ghsim, app_jwt)
        assert answer.status_code == 401, case
        assert answer.json()["message"], case
    assert _access_token(ghsim, app.jwt(lifetime_s=600, issued_ago_s=60)).status_code == 201


def test_an_expired_installation_token_gets_bad_credentials(ghsim: Ghsim) -> None:
    ghsim.admin.configure(installation_token_ttl_s=1)
    token = _access_token(ghsim, ghsim.app.jwt()).json()["token"]
    assert _get(ghsim, f"Bearer {token}").status_code == 200
    time.sleep(1.2)
    answer = _get(ghsim, f"Bearer {token}")
    assert answer.status_code == 401
    assert answer.json()["message"] == "Bad credentials"


def test_the_token_expiry_is_reported_in_the_answer(ghsim: Ghsim) -> None:
    ghsim.admin.configure(installation_token_ttl_s=120)
    body = _access_token(ghsim, ghsim.app.jwt()).json()
    expires_at = datetime.fromisoformat(body["expires_at"]).timestamp()
    assert 100 < expires_at - time.time() <= 121
