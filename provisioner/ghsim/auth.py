"""Who is calling: PATs, GitHub App JWTs and the installation tokens they are exchanged for."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import jwt

from provisioner.ghsim.config import SimulatorConfig

MAX_JWT_LIFETIME_S = 600
# Allowance for clock drift between the App's host and the simulator.
CLOCK_DRIFT_S = 5


class AuthFailed(Exception):
    """401; the message is GitHub's wording for the failure."""


@dataclass(frozen=True)
class Caller:
    kind: str  # "pat", "installation" or "app"
    key: str  # the rate-limit identity; never a secret
    subject: str  # who GitHub's messages name, e.g. "installation ID 7"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    installation_id: int
    expires_at: float  # epoch seconds


class Authenticator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._installation_tokens: dict[str, IssuedToken] = {}

    def caller(self, authorization: str | None, config: SimulatorConfig, now: float) -> Caller:
        """The caller named by an Authorization header; AuthFailed when it is not valid."""
        if not authorization:
            raise AuthFailed("Requires authentication")
        token = _bearer(authorization)
        if token is None:
            raise AuthFailed("Bad credentials")
        if token in config.pats:
            user = config.pats.index(token) + 1
            return Caller("pat", f"pat:{user}", f"user ID {user}")
        with self._lock:
            issued = self._installation_tokens.get(token)
        if issued is not None and issued.expires_at > now:
            installation = issued.installation_id
            return Caller(
                "installation", f"installation:{installation}", f"installation ID {installation}"
            )
        if token.count(".") == 2:
            self.verify_app_jwt(token, config, now)
            return Caller("app", f"app:{config.app_id}", f"app ID {config.app_id}")
        raise AuthFailed("Bad credentials")

    def verify_app_jwt(self, token: str, config: SimulatorConfig, now: float) -> None:
        if config.app_id is None or config.app_public_key_pem is None:
            raise AuthFailed("A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                token,
                config.app_public_key_pem,
                algorithms=["RS256"],
                options={
                    "require": ["exp", "iat", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError:
            raise AuthFailed("A JSON web token could not be decoded") from None
        if str(claims["iss"]) != str(config.app_id):
            raise AuthFailed("A JSON web token could not be decoded")
        exp, iat = float(claims["exp"]), float(claims["iat"])
        if exp <= now:
            raise AuthFailed(
                "'Expiration time' claim ('exp') must be a numeric value in the future"
            )
        if exp > now + MAX_JWT_LIFETIME_S + CLOCK_DRIFT_S:
            raise AuthFailed("'Expiration time' claim ('exp') is too far in the future")
        if iat > now + CLOCK_DRIFT_S:
            raise AuthFailed("'Issued at' claim ('iat') must be an Integer representing the time")

    def issue_installation_token(self, installation_id: int, ttl_s: float) -> IssuedToken:
        issued = IssuedToken("ghs_" + secrets.token_hex(18), installation_id, time.time() + ttl_s)
        with self._lock:
            self._installation_tokens[issued.token] = issued
        return issued

    def clear(self) -> None:
        with self._lock:
            self._installation_tokens.clear()


def _bearer(authorization: str) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() not in ("bearer", "token") or not value.strip():
        return None
    return value.strip()
