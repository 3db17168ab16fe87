"""The limits every creation and removal goes through, shared across processes in Redis:
token buckets for GitHub and Kubernetes requests, the creation concurrency budget and its
adaptive limit. ``unlimited`` (the benchmark's `limit` mode) skips them all."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import redis

from provisioner import metrics
from provisioner.config import Settings
from provisioner.github import RateLimitInfo
from provisioner.limits import (
    AdaptiveConcurrency,
    GitHubRateLimitPauser,
    RedisConcurrencyBudget,
    RedisTokenBucket,
    SharedAdaptiveConcurrency,
)

log = logging.getLogger(__name__)

GITHUB_BUCKET_KEY = "provisioner:limits:github"
KUBE_BUCKET_KEY = "provisioner:limits:kube"
CREATION_BUDGET_KEY = "provisioner:limits:creations"


class Limits:
    def __init__(self, settings: Settings, redis_client: redis.Redis, unlimited: bool = False):
        self.unlimited = unlimited
        self.github_bucket = RedisTokenBucket(
            redis_client,
            GITHUB_BUCKET_KEY,
            settings.github_requests_per_second,
            settings.github_burst,
        )
        self.kube_bucket = RedisTokenBucket(
            redis_client, KUBE_BUCKET_KEY, settings.kube_requests_per_second, settings.kube_burst
        )
        self.budget = RedisConcurrencyBudget(
            redis_client, CREATION_BUDGET_KEY, settings.runner_creation_concurrency
        )
        self.adaptive = (
            SharedAdaptiveConcurrency(
                AdaptiveConcurrency(settings.runner_creation_concurrency), self.budget
            )
            if settings.adaptive_concurrency
            else None
        )
        self._pauser = GitHubRateLimitPauser(self.github_bucket)

    def close(self) -> None:
        self.budget.close()

    def creation_slot(self, timeout: float) -> contextlib.AbstractContextManager[object]:
        """One of the creation budget's slots, held around a creation's GitHub call."""
        if self.unlimited:
            return contextlib.nullcontext()
        return _timed(self.budget.slot(timeout), "creation_slot")

    def github_token(self, timeout: float) -> None:
        self._token(self.github_bucket, "github", timeout)

    def kube_token(self, timeout: float) -> None:
        self._token(self.kube_bucket, "kube", timeout)

    def pause_github(self, seconds: float) -> None:
        """Every process waits, not only the caller: the next call would be refused too."""
        self.github_bucket.pause_until(time.time() + seconds)

    def on_throttled(self) -> None:
        if self.adaptive is not None:
            self.adaptive.on_throttle()

    def on_success(self) -> None:
        if self.adaptive is not None:
            self.adaptive.on_success()

    def on_rate_limit(self, info: RateLimitInfo) -> None:
        metrics.GITHUB_RATE_LIMIT_REMAINING.labels(resource=info.resource or "core").set(
            info.remaining
        )
        self._pauser(info)

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


@contextlib.contextmanager
def _timed(manager: contextlib.AbstractContextManager[str], limit: str) -> Iterator[str]:
    started = time.monotonic()
    with manager as slot:
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(limit=limit).observe(time.monotonic() - started)
        yield slot
