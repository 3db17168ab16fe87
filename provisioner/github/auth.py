"""GitHub credentials from a Kubernetes Secret, and the GitHub App installation-token cache."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from provisioner.github.errors import InvalidGitHubResponse

log = logging.getLogger(__name__)

PAT_KEY = "github_token"
APP_ID_KEY = "github_app_id"
APP_INSTALLATION_KEY = "github_app_installation_id"
APP_PRIVATE_KEY_KEY = "github_app_private_key"
APP_KEYS = (APP_ID_KEY, APP_INSTALLATION_KEY, APP_PRIVATE_KEY_KEY)

# GitHub accepts App JWTs for at most 10 minutes; iat in the past absorbs clock drift.
JWT_BACKDATE_S = 60
JWT_LIFETIME_S = 540
# Refresh an installation token this long before it expires (less for short-lived tokens).
REFRESH_MARGIN_S = 300.0


class InvalidCredentials(ValueError):
    """The Secret does not hold usable GitHub credentials; ``key`` is the Secret key at fault."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class PatCredentials:
    token: str = field(repr=False)

    def describe(self) -> str:
        return f"the personal access token from Secret key {PAT_KEY}"

    @property
    def identity(self) -> str:
        """Who GitHub counts this credential as, without the secret: a fingerprint of the
        token (not reversible), for limit keys, logs and metric labels."""
        return "token-" + hashlib.sha256(self.token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AppCredentials:
    app_id: int
    installation_id: int
    private_key_pem: str = field(repr=False)

    def describe(self) -> str:
        return f"the GitHub App {self.app_id} installation {self.installation_id}"

    @property
    def identity(self) -> str:
        """GitHub keys an App's limits by installation."""
        return f"app-{self.app_id}-installation-{self.installation_id}"


Credentials = PatCredentials | AppCredentials


def credentials_from_secret_data(data: Mapping[str, bytes | str]) -> Credentials:
    """A PAT (``github_token``) or a GitHub App (``github_app_id``,
    ``github_app_installation_id``, ``github_app_private_key``) from a Secret's data."""
    values = {key: _text(value) for key, value in data.items()}
    token = values.get(PAT_KEY, "").strip()
    if token:
        return PatCredentials(token)
    present = [key for key in APP_KEYS if values.get(key, "").strip()]
    if not present:
        raise InvalidCredentials(
            f"the Secret has no {PAT_KEY}; set {PAT_KEY} to a personal access token, or set "
            f"{', '.join(APP_KEYS)} for a GitHub App",
            key=PAT_KEY,
        )
    missing = [key for key in APP_KEYS if key not in present]
    if missing:
        raise InvalidCredentials(
            f"the Secret lacks {missing[0]}; a GitHub App needs all of {', '.join(APP_KEYS)}",
            key=missing[0],
        )
    app_id = _positive_int(values[APP_ID_KEY], APP_ID_KEY)
    installation_id = _positive_int(values[APP_INSTALLATION_KEY], APP_INSTALLATION_KEY)
    private_key = values[APP_PRIVATE_KEY_KEY].strip() + "\n"
    try:
        key = load_pem_private_key(private_key.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPrivateKey):
        raise InvalidCredentials(
            f"{APP_PRIVATE_KEY_KEY} is not an unencrypted PEM RSA private key; paste the .pem "
            "file GitHub generated for the App",
            key=APP_PRIVATE_KEY_KEY,
        )
    return AppCredentials(app_id, installation_id, private_key)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _positive_int(value: str, key: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if number < 1:
        raise InvalidCredentials(f"{key} must be a positive integer (got {value.strip()!r})", key)
    return number


def app_jwt(credentials: AppCredentials, now: float) -> str:
    """The RS256 JWT that authenticates as the App itself."""
    claims = {
        "iat": int(now) - JWT_BACKDATE_S,
        "exp": int(now) + JWT_LIFETIME_S,
        "iss": str(credentials.app_id),
    }
    return jwt.encode(claims, credentials.private_key_pem, algorithm="RS256")


@dataclass(frozen=True)
class InstallationToken:
    token: str = field(repr=False)
    expires_at: float  # epoch seconds
    refresh_at: float  # epoch seconds


def parse_installation_token(body: object, now: float) -> InstallationToken:
    """The token of an access_tokens answer, due for refresh a margin before it expires."""
    operation = "create-installation-access-token"
    if not isinstance(body, Mapping):
        raise InvalidGitHubResponse(f"GitHub's answer to {operation} is not a JSON object", "token")
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise InvalidGitHubResponse(f"GitHub's answer to {operation} has no token", "token")
    try:
        expires_at = datetime.fromisoformat(str(body["expires_at"])).timestamp()
    except (KeyError, ValueError):
        raise InvalidGitHubResponse(
            f"GitHub's answer to {operation} has no valid expires_at (ISO 8601 time expected)",
            "expires_at",
        ) from None
    margin = min(REFRESH_MARGIN_S, max(0.0, expires_at - now) / 2)
    return InstallationToken(token, expires_at, expires_at - margin)


class InstallationTokenProvider:
    """Caches the installation token; one refresh at a time however many threads ask.

    ``exchange(jwt)`` performs the POST /app/installations/{id}/access_tokens and returns the
    parsed answer; the client supplies it so the exchange shares its connections and errors.
    """

    def __init__(
        self,
        credentials: AppCredentials,
        exchange: Callable[[str], InstallationToken],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self._exchange = exchange
        self._clock = clock
        self._lock = threading.Lock()
        self._current: InstallationToken | None = None

    def token(self) -> str:
        current = self._current
        if current is not None and self._clock() < current.refresh_at:
            return current.token
        with self._lock:
            # Another thread may have refreshed while this one waited for the lock.
            current = self._current
            now = self._clock()
            if current is None or now >= current.refresh_at:
                current = self._exchange(app_jwt(self.credentials, now))
                self._current = current
                log.debug("refreshed the installation token of %s", self.credentials.describe())
            return current.token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after GitHub rejected it. A token already replaced is left alone,
        so many threads that saw the same 401 cause one refresh."""
        with self._lock:
            if self._current is not None and self._current.token == token:
                self._current = None

    def __repr__(self) -> str:
        return f"InstallationTokenProvider({self.credentials.describe()})"
