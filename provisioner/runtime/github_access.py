"""GitHub as the runtime reaches it: one client per credential (read from the scale set's
Secret, cached a while), one connection pool per GitHub host for all of them, the scale set's
scope, and the circuit breaker every call passes. A credential is only sent to a host the
operator allowed (provisioner.github.hosts)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import httpx

from provisioner.config import Settings
from provisioner.github import GitHubClient, GitHubScope, github_http
from provisioner.github.errors import GitHubUnavailable, ServerError, Unauthorized
from provisioner.github.hosts import api_url_for, check_allowed
from provisioner.kube.scaleset import ScaleSet, ScaleSetStore
from provisioner.limits import CircuitBreaker
from provisioner.runtime.cache import BoundedCache
from provisioner.runtime.limits import Limits

T = TypeVar("T")

CREDENTIALS_CACHE_SECONDS = 300.0
# Credentials and scopes of this many scale sets are kept; more are read again when needed.
CACHE_SIZE = 512


class GitHubAccess:
    def __init__(self, settings: Settings, store: ScaleSetStore, limits: Limits) -> None:
        self.settings = settings
        self.store = store
        self.limits = limits
        self.breaker = CircuitBreaker(failure_threshold=10, reset_timeout=5.0)
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

    def request(self, scale_set: ScaleSet, call: Callable[[GitHubClient], T]) -> T:
        """``call`` with the scale set's client, through the breaker. A 401 re-reads the
        Secret once (it may have been rotated since it was read)."""
        client = self._client(scale_set)
        self.breaker.before_call()
        try:
            try:
                result = call(client)
            except Unauthorized:
                self._clients.discard(_credentials_key(scale_set, client.api_url))
                result = call(self._client(scale_set))
        except (ServerError, GitHubUnavailable):
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        self.limits.on_success()
        return result

    def _client(self, scale_set: ScaleSet) -> GitHubClient:
        api_url = self.api_url(scale_set)

        def build() -> GitHubClient:
            return GitHubClient(
                api_url,
                self.store.read_credentials(scale_set),
                timeout=self.settings.github_request_timeout,
                on_rate_limit=self.limits.on_rate_limit,
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
