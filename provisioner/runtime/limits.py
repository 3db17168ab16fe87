"""The limits every creation and removal goes through, shared across processes in Redis and
keyed the way GitHub keys its own.

Per credential (a token's fingerprint or an App installation, never the secret): the request
rate, generate-jitconfig calls per minute (GitHub's points per endpoint), pauses GitHub asks
for (Retry-After, a spent primary budget), the adaptive concurrency and the circuit breaker.
Per registration scope: GitHub's cap on registrations per 5 minutes. Global: only the total
creation concurrency and the Kubernetes request rate, which protect our own workers and the
API server. So one tenant being throttled or slow costs the others nothing.
``unlimited`` (the benchmark's `limit` mode) skips them all."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import redis

from provisioner import metrics
from provisioner.config import Settings
from provisioner.github import GitHubScope, RateLimitInfo
from provisioner.limits import (
    AdaptiveConcurrency,
    CircuitBreaker,
    RedisConcurrencyBudget,
    RedisSlidingWindow,
    RedisTokenBucket,
    SharedAdaptiveConcurrency,
)
from provisioner.runtime.cache import BoundedCache
from provisioner.runtime.credentials import CredentialRecords

log = logging.getLogger(__name__)

GITHUB_BUCKET_KEY = "provisioner:limits:github"
KUBE_BUCKET_KEY = "provisioner:limits:kube"
CREATION_BUDGET_KEY = "provisioner:limits:creations"
JITCONFIG_WINDOW_KEY = "provisioner:limits:jitconfig"
REMOVAL_WINDOW_KEY = "provisioner:limits:delete-runner"
# GitHub's minute of points per endpoint (generate-jitconfig, delete-runner). A call takes its
# place before it leaves and moves it to when its answer came: GitHub counts the call when it
# arrives, within the round trip, and places stamped only at the start drew 429s at the
# minute's edge whenever a call took long to leave (under load) or to arrive.
ENDPOINT_WINDOW_SECONDS = 60.0
SCOPE_WINDOW_KEY = "provisioner:limits:registrations"
SCOPE_WINDOW_SECONDS = 300.0
# Longer than a healthy Secret and Pod creation (tens of milliseconds).
GLOBAL_SLOT_LEASE_SECONDS = 2.0
# Credentials whose limits a process keeps at hand; long-lived so a credential in use keeps
# its budget's lease renewer.
CREDENTIALS_KEPT = 512
CREDENTIAL_KEEP_SECONDS = 3600.0
# A credential's x-ratelimit-* headers are written to Redis at most this often by a process
# while its budget is far from spent (every answer carries them: a write per call was a
# Redis round trip per call), and on every answer once little is left or the window resets.
RATE_LIMIT_RECORD_SECONDS = 1.0
RATE_LIMIT_RECORD_EVERY_CALL_BELOW = 500


class CredentialLimits:
    """One credential's limits. Thread-safe."""

    def __init__(
        self,
        settings: Settings,
        redis_client: redis.Redis,
        identity: str,
        records: CredentialRecords,
    ) -> None:
        self.identity = identity
        self.records = records
        self.bucket = RedisTokenBucket(
            redis_client,
            f"{GITHUB_BUCKET_KEY}:{identity}",
            settings.github_requests_per_second,
            settings.github_burst,
        )
        self.registrations = RedisSlidingWindow(
            redis_client,
            f"{JITCONFIG_WINDOW_KEY}:{identity}",
            settings.github_registrations_per_minute,
            ENDPOINT_WINDOW_SECONDS,
        )
        # delete-runner is an endpoint of its own with the same points a minute (5 a DELETE):
        # a scale-down faster than that met GitHub's secondary limit on every removal past it.
        self.removals = RedisSlidingWindow(
            redis_client,
            f"{REMOVAL_WINDOW_KEY}:{identity}",
            settings.github_registrations_per_minute,
            ENDPOINT_WINDOW_SECONDS,
        )
        self.budget = RedisConcurrencyBudget(
            redis_client,
            f"{CREATION_BUDGET_KEY}:{identity}",
            settings.runner_creation_concurrency,
        )
        self.adaptive = (
            SharedAdaptiveConcurrency(
                AdaptiveConcurrency(settings.runner_creation_concurrency), self.budget
            )
            if settings.adaptive_concurrency
            else None
        )
        self.breaker = CircuitBreaker(failure_threshold=10, reset_timeout=5.0)
        self._recorded: tuple[float, float] | None = None  # (when, the window's reset)

    def close(self) -> None:
        self.budget.close()

    def paused_for(self) -> float:
        """Seconds GitHub asked this credential to wait, from now."""
        return self.bucket.paused_for()

    def on_rate_limit(self, info: RateLimitInfo) -> None:
        """The x-ratelimit-* headers of one of the credential's authenticated answers."""
        metrics.GITHUB_RATE_LIMIT_REMAINING.labels(
            credential=self.identity, resource=info.resource or "core"
        ).set(info.remaining)
        now = time.monotonic()
        if should_record_rate_limit(self._recorded, now, info):
            self._recorded = (now, float(info.reset))
            self.records.record_rate_limit(self.identity, info)
        if info.remaining <= 0 and info.reset > 0:
            self._pause_until(float(info.reset))

    def on_throttled(self, retry_after: float) -> None:
        """GitHub refused a call for its rate limits: every process waits for this
        credential, and its concurrency comes down."""
        metrics.GITHUB_THROTTLED.labels(credential=self.identity).inc()
        self._pause_until(time.time() + retry_after)
        self.records.record_throttled(self.identity)
        if self.adaptive is not None:
            self.adaptive.on_throttle()
            metrics.CREDENTIAL_CONCURRENCY_LIMIT.labels(credential=self.identity).set(
                self.budget.limit
            )

    def on_success(self) -> None:
        if self.adaptive is not None:
            self.adaptive.on_success()
            metrics.CREDENTIAL_CONCURRENCY_LIMIT.labels(credential=self.identity).set(
                self.budget.limit
            )

    def _pause_until(self, epoch_seconds: float) -> None:
        """Every process waits for this credential until then (a pause only lengthens)."""
        left = self.bucket.pause_until(epoch_seconds)
        metrics.GITHUB_PAUSED_UNTIL.labels(credential=self.identity).set(time.time() + left)


class Limits:
    def __init__(self, settings: Settings, redis_client: redis.Redis, unlimited: bool = False):
        self.settings = settings
        self.redis = redis_client
        self.unlimited = unlimited
        self.records = CredentialRecords(redis_client)
        self.kube_bucket = RedisTokenBucket(
            redis_client, KUBE_BUCKET_KEY, settings.kube_requests_per_second, settings.kube_burst
        )
        # The ceiling over every credential's creations together, held around their
        # Kubernetes writes (a call waiting on GitHub holds only its credential's share). Its
        # slots are not renewed: a write hung on an unresponsive API server stops counting
        # after a lease.
        self.budget = RedisConcurrencyBudget(
            redis_client,
            CREATION_BUDGET_KEY,
            settings.runner_creation_concurrency,
            lease=GLOBAL_SLOT_LEASE_SECONDS,
            renew=False,
        )
        self._credentials: BoundedCache[str, CredentialLimits] = BoundedCache(
            CREDENTIALS_KEPT, CREDENTIAL_KEEP_SECONDS
        )

    def close(self) -> None:
        self.budget.close()
        for credential in self._credentials.values():
            credential.close()

    def credential(self, identity: str) -> CredentialLimits:
        return self._credentials.get_or_load(
            identity,
            lambda: CredentialLimits(self.settings, self.redis, identity, self.records),
        )

    @contextlib.contextmanager
    def share_slot(
        self,
        credential: CredentialLimits,
        timeout: float,
        scale_set: str,
        patience: float | None = None,
    ) -> Iterator[None]:
        """A slot of the credential's share of the creations, taken before anything else a
        creation spends: a credential at its share waits without taking a global slot, a
        registration of the scope or a request token from anyone. The scale sets using the
        credential at once split its share evenly, so a small scale-up is not stuck behind
        a big one. RateLimitExceeded when none is free within ``timeout``, or, with
        ``patience``, as soon as the slots' turnover says none will be within it."""
        if self.unlimited:
            yield
            return
        in_flight = metrics.CREDENTIAL_CREATIONS.labels(credential=credential.identity)
        slot = credential.budget.slot(timeout, group=scale_set, patience=patience)
        with _timed(slot, "credential_slot"):
            in_flight.inc()
            try:
                yield
            finally:
                in_flight.dec()

    @contextlib.contextmanager
    def global_slot(self, timeout: float) -> Iterator[None]:
        """One of the global ceiling's slots, held around a creation's Kubernetes writes."""
        if self.unlimited:
            yield
            return
        with _timed(self.budget.slot(timeout), "creation_slot"):
            yield

    def github_token(self, credential: CredentialLimits, timeout: float) -> None:
        self._token(credential.bucket, "github", timeout)

    def try_registration(
        self, credential: CredentialLimits, scope: GitHubScope, call: str
    ) -> float:
        """Room for one more registration, the generate-jitconfig ``call``: the scope's cap,
        and the credential's points a minute. 0.0 when taken, else the seconds until there
        is. A place taken is moved by ``registration_answered`` once the call is over."""
        if self.unlimited:
            return 0.0
        # Both places or neither: a place kept in one window for a call the other refused
        # would count a call never made (queued tasks retrying would fill the credential's
        # minute or the scope's 5 minutes with them).
        return credential.registrations.try_acquire(call, self.scope_window(scope))

    def try_removal(self, credential: CredentialLimits, call: str) -> float:
        """Room for one more delete-runner ``call`` of the credential this minute: 0.0 when
        taken, else the seconds until there is. Moved by ``removal_answered``."""
        if self.unlimited:
            return 0.0
        return credential.removals.try_acquire(call)

    def registration_answered(
        self, credential: CredentialLimits, scope: GitHubScope, call: str
    ) -> None:
        """The generate-jitconfig ``call`` is over (answered or not): its places count from
        now, since GitHub counted it at some moment of its round trip."""
        self._answered(call, credential.registrations, self.scope_window(scope))

    def removal_answered(self, credential: CredentialLimits, call: str) -> None:
        self._answered(call, credential.removals)

    def _answered(self, call: str, window: RedisSlidingWindow, *others: RedisSlidingWindow) -> None:
        """Best effort: with Redis away the places keep the call's start."""
        if self.unlimited:
            return
        with contextlib.suppress(redis.RedisError):
            window.end(call, *others)

    def scope_window(self, scope: GitHubScope) -> RedisSlidingWindow:
        return RedisSlidingWindow(
            self.redis,
            f"{SCOPE_WINDOW_KEY}:{scope.host}{scope.api_path}",
            self.settings.github_scope_registrations,
            SCOPE_WINDOW_SECONDS,
        )

    def kube_tokens(self, timeout: float, count: int = 1) -> None:
        """``count`` Kubernetes writes' tokens, taken together (one Redis call)."""
        self._token(self.kube_bucket, "kube", timeout, count)

    def _token(self, bucket: RedisTokenBucket, limit: str, timeout: float, count: int = 1) -> None:
        if self.unlimited:
            return
        started = time.monotonic()
        try:
            bucket.acquire(timeout, count)
        except redis.RedisError:
            # The bucket lives in Redis, which is away: this call (made inside a budget slot
            # taken before the outage, or a rollback) goes ahead rather than strand the runner
            # half made. New creations cannot start until Redis is back.
            log.debug("Redis unavailable; %s call made without a token", limit)
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(limit=limit).observe(time.monotonic() - started)


def should_record_rate_limit(
    recorded: tuple[float, float] | None, now: float, info: RateLimitInfo
) -> bool:
    """Whether an answer's rate-limit headers are worth a write, given the last write
    (monotonic time, the window's reset) of this process."""
    if recorded is None or info.remaining < RATE_LIMIT_RECORD_EVERY_CALL_BELOW:
        return True
    when, reset = recorded
    return float(info.reset) != reset or now - when >= RATE_LIMIT_RECORD_SECONDS


@contextlib.contextmanager
def _timed(manager: contextlib.AbstractContextManager[str], limit: str) -> Iterator[str]:
    started = time.monotonic()
    with manager as slot:
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(limit=limit).observe(time.monotonic() - started)
        yield slot
