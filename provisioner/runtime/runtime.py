"""What the reconciler and the workers both need from the outside world, built once per
process and shared by its threads: the Kubernetes and Redis clients, GitHub access, the
limits, the ledger and the runner locks."""

from __future__ import annotations

import contextlib
import time

import redis
from kubernetes import client as k8s

from provisioner.config import Settings
from provisioner.kube.client import api_client
from provisioner.kube.runner_objects import RunnerObjects
from provisioner.kube.scaleset import ScaleSet, ScaleSetStore
from provisioner.ledger import Ledger, LedgerEntry
from provisioner.runtime.github_access import GitHubAccess
from provisioner.runtime.limits import Limits
from provisioner.runtime.redis_retry import through_redis_outage
from provisioner.runtime.registrations import Registrations
from provisioner.runtime.runner_lock import RunnerLocks
from provisioner.runtime.scale_sets import ScaleSetCache

# How long a creation keeps trying a Redis that is away before giving up on a step.
REDIS_OUTAGE_WAIT_SECONDS = 30.0


def kube_api_client(settings: Settings) -> k8s.ApiClient:
    # One pooled connection per creation in flight, so threads do not queue for sockets.
    return api_client(
        settings.kubeconfig, pool_size=max(16, settings.runner_creation_concurrency * 2)
    )


class Runtime:
    def __init__(
        self,
        settings: Settings,
        redis_client: redis.Redis | None = None,
        unlimited: bool = False,
    ):
        """``unlimited`` skips the rate limits and the concurrency budget: the benchmark's
        `limit` mode, which measures the floor this machine allows."""
        self.settings = settings
        self.redis = redis_client or redis.Redis.from_url(
            settings.redis_connection_url(), health_check_interval=10, socket_timeout=10
        )
        self.api = kube_api_client(settings)
        self.store = ScaleSetStore(self.api)
        self.scale_sets = ScaleSetCache(self.store)
        self.ledger = Ledger(self.redis)
        self.locks = RunnerLocks(self.redis)
        self.limits = Limits(settings, self.redis, unlimited)
        self.github = GitHubAccess(settings, self.store, self.limits)
        self.registrations = Registrations(self.github, self.limits)

    def close(self) -> None:
        self.locks.close()
        self.limits.close()
        self.github.close()
        self.api.close()
        self.redis.close()

    def objects(self, scale_set: ScaleSet) -> RunnerObjects:
        return RunnerObjects(self.api, scale_set.namespace)

    def ledger_wants(self, entry: LedgerEntry) -> bool:
        """Whether the runner is still planned (not done, cancelled or forgotten)."""
        return through_redis_outage(
            lambda: self.ledger.is_in_flight(entry.scale_set, entry.name, time.time()),
            REDIS_OUTAGE_WAIT_SECONDS,
        )

    def created(self, entry: LedgerEntry) -> None:
        # If Redis stays away, the entry stays planned until its deadline: it and the
        # runner's pod carry the same name and count once.
        with contextlib.suppress(redis.RedisError):
            through_redis_outage(
                lambda: self.ledger.mark_created(entry.scale_set, entry.name, time.time()),
                REDIS_OUTAGE_WAIT_SECONDS,
            )

    def complete(self, entry: LedgerEntry) -> None:
        # Done as soon as Redis answers, so a failed runner is planned anew at once. If Redis
        # stays away, no harm: the entry and the runner's pod carry the same name and count
        # once, and the entry expires at its deadline.
        with contextlib.suppress(redis.RedisError):
            through_redis_outage(
                lambda: self.ledger.complete(entry.scale_set, entry.name),
                REDIS_OUTAGE_WAIT_SECONDS,
            )
