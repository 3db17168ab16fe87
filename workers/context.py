"""Everything a creation needs from the outside world, built once per process and shared by
its threads: Kubernetes and GitHub clients (connections reused), the global limits in Redis,
the ledger, and caches of scale sets and credentials."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import redis
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from provisioner import metrics
from provisioner.config import Settings
from provisioner.github import GitHubClient, GitHubScope, RateLimitInfo, github_http
from provisioner.github.errors import GitHubUnavailable, ServerError, Unauthorized
from provisioner.kube.client import api_client
from provisioner.kube.runner_objects import RunnerObjects
from provisioner.kube.scaleset import ScaleSet, ScaleSetStore
from provisioner.ledger import Ledger, LedgerEntry
from provisioner.limits import (
    AdaptiveConcurrency,
    CircuitBreaker,
    GitHubRateLimitPauser,
    RedisConcurrencyBudget,
    RedisTokenBucket,
    SharedAdaptiveConcurrency,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

GITHUB_BUCKET_KEY = "provisioner:limits:github"
KUBE_BUCKET_KEY = "provisioner:limits:kube"
CREATION_BUDGET_KEY = "provisioner:limits:creations"
RUNNER_LOCK_PREFIX = "provisioner:lock:runner:"

# A scale set read once serves every runner of its generation; without a generation (the
# sequential path passes one too) it is re-read after this long.
SCALE_SET_CACHE_SECONDS = 30.0
CREDENTIALS_CACHE_SECONDS = 300.0


def kube_api_client(settings: Settings) -> k8s.ApiClient:
    # One pooled connection per creation in flight, so threads do not queue for sockets.
    return api_client(
        settings.kubeconfig, pool_size=max(16, settings.runner_creation_concurrency * 2)
    )


class WorkerContext:
    def __init__(
        self,
        settings: Settings,
        redis_client: redis.Redis | None = None,
        unlimited: bool = False,
    ):
        """``unlimited`` skips the rate limits and the concurrency budget: the benchmark's
        `limit` mode, which measures the floor this machine allows."""
        self.settings = settings
        self.unlimited = unlimited
        self.redis = redis_client or redis.Redis.from_url(
            settings.redis_url, health_check_interval=10, socket_timeout=10
        )
        self.api = kube_api_client(settings)
        self.store = ScaleSetStore(self.api)
        self.core = k8s.CoreV1Api(self.api)
        self.ledger = Ledger(self.redis)
        self.github_bucket = RedisTokenBucket(
            self.redis,
            GITHUB_BUCKET_KEY,
            settings.github_requests_per_second,
            settings.github_burst,
        )
        self.kube_bucket = RedisTokenBucket(
            self.redis, KUBE_BUCKET_KEY, settings.kube_requests_per_second, settings.kube_burst
        )
        self.budget = RedisConcurrencyBudget(
            self.redis, CREATION_BUDGET_KEY, settings.runner_creation_concurrency
        )
        self.adaptive = (
            SharedAdaptiveConcurrency(
                AdaptiveConcurrency(settings.runner_creation_concurrency), self.budget
            )
            if settings.adaptive_concurrency
            else None
        )
        self.breaker = CircuitBreaker(failure_threshold=10, reset_timeout=5.0)
        self._pauser = GitHubRateLimitPauser(self.github_bucket)
        # One connection pool for every credential's client.
        self._github_http = github_http(settings.github_api_url, settings.github_request_timeout)
        self._lock = threading.Lock()
        self._scale_sets: dict[str, tuple[ScaleSet, int | None, float]] = {}
        self._scale_set_reads: dict[str, threading.Lock] = {}
        self._github: dict[str, tuple[GitHubClient, float]] = {}
        self._objects: dict[str, RunnerObjects] = {}
        self._scopes: dict[str, GitHubScope] = {}

    def close(self) -> None:
        self.budget.close()
        self._github_http.close()
        self.api.close()
        self.redis.close()

    # Ledger and per-runner lock.

    def ledger_wants(self, entry: LedgerEntry, wait: float = 30.0) -> bool:
        return _through_redis_outage(
            lambda: self.ledger.is_in_flight(entry.scale_set, entry.name, time.time()), wait
        )

    def complete(self, entry: LedgerEntry, wait: float = 30.0) -> None:
        # Done as soon as Redis answers, so a failed runner is planned anew at once. If Redis
        # stays away, no harm: the entry and the runner's pod carry the same name and count
        # once, and the entry expires at its deadline.
        with contextlib.suppress(redis.RedisError):
            _through_redis_outage(lambda: self.ledger.complete(entry.scale_set, entry.name), wait)

    @contextlib.contextmanager
    def runner_lock(self, name: str, ttl: float) -> Iterator[bool]:
        """Held by one delivery of a runner's task at a time. A second delivery waits for the
        first to finish (then finds the ledger entry done); a dead holder's lock expires."""
        key = RUNNER_LOCK_PREFIX + name
        token = uuid.uuid4().hex
        deadline = time.monotonic() + ttl
        owned = False
        while not owned and time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                owned = bool(self.redis.set(key, token, nx=True, px=int(ttl * 1000)))
            if not owned:
                time.sleep(0.2)
        try:
            yield owned
        finally:
            if owned:
                self._release(key, token)

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"

    def _release(self, key: str, token: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.eval(self._RELEASE, 1, key, token)

    # Limits.

    def budget_slot(self, timeout: float):
        if self.unlimited:
            return contextlib.nullcontext()
        return _timed(self.budget.slot(timeout), "creation_slot")

    def github_token(self, timeout: float) -> None:
        self._token(self.github_bucket, "github", timeout)

    def kube_token(self, timeout: float) -> None:
        self._token(self.kube_bucket, "kube", timeout)

    def _token(self, bucket: RedisTokenBucket, limit: str, timeout: float) -> None:
        if self.unlimited:
            return
        started = time.monotonic()
        try:
            bucket.acquire(timeout)
        except redis.RedisError:
            # The bucket lives in Redis, which is away: this call (made inside a budget slot
            # taken before the outage, or a rollback) goes ahead rather than strand the runner
            # half made. New creations cannot start until Redis is back.
            log.debug("Redis unavailable; %s call made without a token", limit)
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(limit=limit).observe(time.monotonic() - started)

    def on_throttled(self) -> None:
        if self.adaptive is not None:
            self.adaptive.on_throttle()

    def on_timeout(self) -> None:
        if self.adaptive is not None:
            self.adaptive.on_timeout()

    def _on_success(self) -> None:
        if self.adaptive is not None:
            self.adaptive.on_success()

    def _on_rate_limit(self, info: RateLimitInfo) -> None:
        metrics.GITHUB_RATE_LIMIT_REMAINING.labels(resource=info.resource or "core").set(
            info.remaining
        )
        self._pauser(info)

    # Kubernetes.

    def scale_set(self, key: str, generation: int | None) -> ScaleSet:
        cached = self._cached_scale_set(key, generation)
        if cached is not None:
            return cached
        with self._lock:
            reading = self._scale_set_reads.setdefault(key, threading.Lock())
        # One thread reads; the others of a batch arriving together find its answer cached.
        with reading:
            cached = self._cached_scale_set(key, generation)
            if cached is not None:
                return cached
            namespace, name = key.split("/", 1)
            read_at = time.monotonic()
            try:
                scale_set = self.store.get(namespace, name)
            except ApiException as exc:
                if exc.status == 404:
                    raise LookupError(key) from None
                raise
            with self._lock:
                self._scale_sets[key] = (scale_set, scale_set.generation, read_at)
            return scale_set

    def _cached_scale_set(self, key: str, generation: int | None) -> ScaleSet | None:
        cached = self._scale_sets.get(key)
        if cached is None:
            return None
        scale_set, cached_generation, read_at = cached
        if generation is not None:
            fresh = generation == cached_generation
        else:
            fresh = time.monotonic() - read_at < SCALE_SET_CACHE_SECONDS
        return scale_set if fresh else None

    def objects(self, scale_set: ScaleSet) -> RunnerObjects:
        objects = self._objects.get(scale_set.namespace)
        if objects is None:
            objects = RunnerObjects(self.api, scale_set.namespace)
            with self._lock:
                self._objects[scale_set.namespace] = objects
        return objects

    def secret_exists(self, scale_set: ScaleSet, name: str) -> bool:
        try:
            self.core.read_namespaced_secret(name, scale_set.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # GitHub.

    def scope(self, scale_set: ScaleSet) -> GitHubScope:
        scope = self._scopes.get(scale_set.github_config_url)
        if scope is None:
            scope = GitHubScope.parse(scale_set.github_config_url)
            self._scopes[scale_set.github_config_url] = scope
        return scope

    def github_request(self, scale_set: ScaleSet, request: Callable[[GitHubClient], T]) -> T:
        self.breaker.before_call()
        try:
            result = request(self._github_client(scale_set))
        except Unauthorized:
            # The Secret may have been rotated since it was read: read it again, once.
            self._forget_github_client(scale_set)
            try:
                result = request(self._github_client(scale_set))
            except (ServerError, GitHubUnavailable):
                self.breaker.record_failure()
                raise
        except (ServerError, GitHubUnavailable):
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        self._on_success()
        return result

    def _github_client(self, scale_set: ScaleSet) -> GitHubClient:
        key = f"{scale_set.namespace}/{scale_set.github_config_secret}"
        now = time.monotonic()
        with self._lock:
            cached = self._github.get(key)
            if cached is not None and now - cached[1] < CREDENTIALS_CACHE_SECONDS:
                return cached[0]
            credentials = self.store.read_credentials(scale_set)
            github = GitHubClient(
                self.settings.github_api_url,
                credentials,
                timeout=self.settings.github_request_timeout,
                on_rate_limit=self._on_rate_limit,
                http=self._github_http,
            )
            self._github[key] = (github, now)
            return github

    def _forget_github_client(self, scale_set: ScaleSet) -> None:
        key = f"{scale_set.namespace}/{scale_set.github_config_secret}"
        with self._lock:
            # Not closed: other threads may be in the middle of a request on it.
            self._github.pop(key, None)


def _through_redis_outage(call: Callable[[], T], wait: float) -> T:
    """``call()``, tried again while Redis is away, for up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return call()
        except redis.RedisError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


@contextlib.contextmanager
def _timed(manager, limit: str):
    started = time.monotonic()
    with manager as slot:
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(limit=limit).observe(time.monotonic() - started)
        yield slot
