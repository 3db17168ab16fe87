"""GitHub as the runtime reaches it: one client per credential (read from the scale set's
Secret, cached a while), one connection pool per GitHub host for all of them, the scale set's
scope, and the credential's circuit breaker every call passes. A credential is only sent to a
host the operator allowed (provisioner.github.hosts); one GitHub rejects is set aside for a
while, without touching any other credential."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import httpx

from provisioner import metrics
from provisioner.config import Settings
from provisioner.github import GitHubClient, GitHubScope, github_http
from provisioner.github.errors import (
    GitHubError,
    GitHubUnavailable,
    RateLimited,
    ServerError,
    Unauthorized,
)
from provisioner.github.hosts import api_url_for, check_allowed
from provisioner.kube.scaleset import ScaleSet, ScaleSetStore
from provisioner.runtime.cache import BoundedCache
from provisioner.runtime.limits import CredentialLimits, Limits

T = TypeVar("T")

CREDENTIALS_CACHE_SECONDS = 300.0
# Credentials and scopes of this many scale sets are kept; more are read again when needed.
CACHE_SIZE = 512


class CredentialRejected(Unauthorized):
    """GitHub rejected this credential lately: it is not used again until the recheck."""


# A rejected credential is tried again after this long: the user may have fixed its Secret.
RECHECK_REJECTED_SECONDS = 20.0


class GitHubAccess:
    def __init__(self, settings: Settings, store: ScaleSetStore, limits: Limits) -> None:
        self.settings = settings
        self.store = store
        self.limits = limits
        # One pool per API URL, shared by every credential's client. Only allowed hosts get
        # one, so there are as many as the operator allowed, not as many as scale sets.
        self._pools: dict[str, httpx.Client] = {}
        self._pools_lock = threading.Lock()
        self._clients: BoundedCache[tuple[str, str], GitHubClient] = BoundedCache(
            CACHE_SIZE, CREDENTIALS_CACHE_SECONDS
        )
        self._scopes: BoundedCache[str, GitHubScope] = BoundedCache(CACHE_SIZE, 3600.0)

    def close(self) -> None:
        with self._pools_lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()

    def scope(self, scale_set: ScaleSet) -> GitHubScope:
        url = scale_set.github_config_url
        return self._scopes.get_or_load(url, lambda: GitHubScope.parse(url))

    def api_url(self, scale_set: ScaleSet) -> str:
        """The scale set's GitHub API URL; HostNotAllowed when its token may not go there."""
        scope = self.scope(scale_set)
        api_url = api_url_for(scope, self.settings.github_api_url, scale_set.github_api_url)
        check_allowed(
            scope,
            api_url,
            self.settings.allowed_github_hosts,
            override=scale_set.github_api_url is not None,
        )
        return api_url

    def credential(self, scale_set: ScaleSet) -> CredentialLimits:
        """The limits of the credential in the scale set's Secret (read when not cached)."""
        return self.limits.credential(self._client(scale_set).credentials.identity)

    def request(self, scale_set: ScaleSet, call: Callable[[GitHubClient], T]) -> T:
        """``call`` with the scale set's client, through its credential's breaker. A
        credential GitHub rejects is not used again before a recheck; the first rejection
        re-reads the Secret once (it may have been rotated since it was read)."""
        client = self._client(scale_set)
        credential = self.limits.credential(client.credentials.identity)
        rejected = self.limits.records.rejected(credential.identity)
        if rejected:
            # Read the Secret again next time: a fixed one is used at once.
            self._clients.discard(_credentials_key(scale_set, client.api_url))
            raise CredentialRejected(
                f"{rejected}; {_secret(scale_set)} is tried again within "
                f"{RECHECK_REJECTED_SECONDS:.0f}s",
                401,
            )
        credential.breaker.before_call()
        try:
            try:
                result = call(client)
            except Unauthorized:
                self._clients.discard(_credentials_key(scale_set, client.api_url))
                client = self._client(scale_set)
                credential = self.limits.credential(client.credentials.identity)
                result = call(client)
        except (ServerError, GitHubUnavailable):
            credential.breaker.record_failure()
            raise
        except RateLimited:
            raise
        except GitHubError as exc:
            if exc.status in (401, 403):
                self._reject(scale_set, client, credential, exc)
            raise
        credential.breaker.record_success()
        credential.on_success()
        return result

    def _reject(
        self,
        scale_set: ScaleSet,
        client: GitHubClient,
        credential: CredentialLimits,
        exc: GitHubError,
    ) -> None:
        metrics.GITHUB_REJECTED.labels(credential=credential.identity).inc()
        self._clients.discard(_credentials_key(scale_set, client.api_url))
        self.limits.records.reject(
            credential.identity,
            f"GitHub rejected {client.credentials.describe()} of {_secret(scale_set)} ({exc})",
            RECHECK_REJECTED_SECONDS,
        )

    def _client(self, scale_set: ScaleSet) -> GitHubClient:
        api_url = self.api_url(scale_set)

        def build() -> GitHubClient:
            credentials = self.store.read_credentials(scale_set)
            credential = self.limits.credential(credentials.identity)
            return GitHubClient(
                api_url,
                credentials,
                timeout=self.settings.github_request_timeout,
                on_rate_limit=credential.on_rate_limit,
                http=self._pool(api_url),
            )

        # Not closed when dropped: the pool is shared, and other threads may be using it.
        return self._clients.get_or_load(_credentials_key(scale_set, api_url), build)

    def _pool(self, api_url: str) -> httpx.Client:
        with self._pools_lock:
            pool = self._pools.get(api_url)
            if pool is None:
                pool = github_http(api_url, self.settings.github_request_timeout)
                self._pools[api_url] = pool
            return pool


def _credentials_key(scale_set: ScaleSet, api_url: str) -> tuple[str, str]:
    return (f"{scale_set.namespace}/{scale_set.github_config_secret}", api_url)


def _secret(scale_set: ScaleSet) -> str:
    return f"Secret {scale_set.namespace}/{scale_set.github_config_secret}"
