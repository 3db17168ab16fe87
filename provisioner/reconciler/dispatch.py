"""Handing planned runners to whoever creates them: a Celery chord (parallel), or the
reconciler itself, one after another (``--no-parallel-creation``, the ARC-like path)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis
from celery import Celery, chord

from provisioner.config import Settings
from provisioner.creation.creator import RunnerCreator
from provisioner.creation.outcome import CreationResult, progress_milestone, summarize
from provisioner.creation.report import report_batch
from provisioner.kube.scaleset import ScaleSet
from provisioner.ledger import LedgerEntry
from provisioner.runtime import Runtime
from provisioner.runtime.queue import (
    CREATE_RUNNER,
    SUMMARIZE_BATCH,
    least_loaded_shard,
    make_celery,
)

log = logging.getLogger(__name__)

# Raises when this process may no longer act as the leader (kube.leader.LostLeadership).
Fence = Callable[[], None]


class Dispatcher(Protocol):
    # True when dispatch returns only after the runners were created.
    synchronous: bool

    def dispatch(
        self, scale_set: ScaleSet, batch_id: str, entries: list[LedgerEntry], fence: Fence
    ) -> None: ...


def batch_payload(scale_set: ScaleSet, batch_id: str) -> dict[str, Any]:
    return {"scale_set": scale_set.key, "batch_id": batch_id, "started_at": time.time()}


class ChordDispatcher:
    """One ``create_runner`` task per runner, and ``summarize_batch`` when all have answered,
    on the least loaded shard queue. Tasks are sent by name: the reconciler needs none of the
    workers' code."""

    synchronous = False

    def __init__(self, settings: Settings, redis_client: redis.Redis):
        self.settings = settings
        self.redis = redis_client
        self._app: Celery | None = None
        self._app_lock = threading.Lock()

    def dispatch(
        self, scale_set: ScaleSet, batch_id: str, entries: list[LedgerEntry], fence: Fence
    ) -> None:
        app = self._celery()
        queue = least_loaded_shard(self.redis)
        header = [
            app.signature(CREATE_RUNNER, args=(entry.to_dict(), scale_set.generation), queue=queue)
            for entry in entries
        ]
        callback = app.signature(
            SUMMARIZE_BATCH, args=(batch_payload(scale_set, batch_id),), queue=queue
        )
        fence()
        chord(header, app=app)(callback)
        log.info(
            "batch %s of %s: %d runners enqueued on %s",
            batch_id,
            scale_set.key,
            len(entries),
            queue,
        )

    def _celery(self) -> Celery:
        with self._app_lock:
            if self._app is None:
                self._app = make_celery(self.settings)
            return self._app


class SequentialDispatcher:
    """Creates the batch in the calling thread with the same code the workers run; stops at
    the first runner after leadership is lost (the runners not made are planned again by
    the next leader)."""

    synchronous = True

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.creator = RunnerCreator(runtime)
        # Called after each runner: the reconcile loop is busy here, not stuck.
        self.on_progress: Callable[[], None] = lambda: None

    def dispatch(
        self, scale_set: ScaleSet, batch_id: str, entries: list[LedgerEntry], fence: Fence
    ) -> None:
        started = time.time()
        results: list[CreationResult] = []
        for entry in entries:
            fence()
            results.append(self.creator.create(entry, scale_set.generation))
            self.on_progress()
            if progress_milestone(len(results), len(entries)):
                created = sum(1 for r in results if r.ok)
                log.info(
                    "batch %s of %s: created %d/%d", batch_id, scale_set.key, created, len(entries)
                )
        report_batch(
            self.runtime.api,
            summarize(results, scale_set.key, batch_id, time.time() - started),
        )
