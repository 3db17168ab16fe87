"""Handing planned runners to whoever creates them: a Celery chord (parallel), or the
reconciler itself, one after another (``--no-parallel-creation``, the ARC-like path)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import redis
from celery import Celery, Signature, chord

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
    make_sending_celery,
)

log = logging.getLogger(__name__)

# Raises when this process may no longer act as the leader (kube.leader.LostLeadership).
Fence = Callable[[], None]
# Called with the error when a batch handed on was not enqueued.
NotEnqueued = Callable[[Exception], None]

# Batches enqueued at once, each in a thread of its own: enqueueing costs about half a
# millisecond a task, so a batch of thousands would otherwise hold the reconcile loop (and every
# other scale set's scale-up) for seconds.
ENQUEUE_THREADS = 4


class Dispatcher(Protocol):
    # True when dispatch returns only after the runners were created (errors raise); false
    # when it returns at once and reports a batch it could not hand on to ``not_enqueued``.
    synchronous: bool

    def dispatch(
        self,
        scale_set: ScaleSet,
        batch_id: str,
        entries: list[LedgerEntry],
        fence: Fence,
        not_enqueued: NotEnqueued,
    ) -> None: ...

    def close(self) -> None: ...


def batch_payload(scale_set: ScaleSet, batch_id: str) -> dict[str, Any]:
    return {"scale_set": scale_set.key, "batch_id": batch_id, "started_at": time.time()}


class ChordDispatcher:
    """One ``create_runner`` task per runner, and ``summarize_batch`` when all have answered,
    on the least loaded shard queue. Tasks are sent by name: the reconciler needs none of the
    workers' code. A batch is enqueued in the dispatcher's threads while the caller goes on."""

    synchronous = False

    def __init__(self, settings: Settings, redis_client: redis.Redis):
        self.settings = settings
        self.redis = redis_client
        self._app: Celery | None = None
        self._app_lock = threading.Lock()
        self._threads = ThreadPoolExecutor(ENQUEUE_THREADS, thread_name_prefix="enqueue")
        # Tasks of each shard queue handed to the threads and not yet all in Redis.
        self._enqueuing: dict[str, int] = {}
        self._enqueuing_lock = threading.Lock()

    def dispatch(
        self,
        scale_set: ScaleSet,
        batch_id: str,
        entries: list[LedgerEntry],
        fence: Fence,
        not_enqueued: NotEnqueued,
    ) -> None:
        try:
            with self._enqueuing_lock:
                queue = least_loaded_shard(self.redis, self._enqueuing)
                self._enqueuing[queue] = self._enqueuing.get(queue, 0) + len(entries)
        except Exception as exc:
            log.warning("batch %s of %s not enqueued: %s", batch_id, scale_set.key, exc)
            not_enqueued(exc)
            return
        self._threads.submit(
            self._enqueue, scale_set, batch_id, entries, queue, fence, not_enqueued
        )

    def close(self) -> None:
        """Waits for the batches being enqueued."""
        self._threads.shutdown(wait=True)

    def _enqueue(
        self,
        scale_set: ScaleSet,
        batch_id: str,
        entries: list[LedgerEntry],
        queue: str,
        fence: Fence,
        not_enqueued: NotEnqueued,
    ) -> None:
        try:
            app = self._celery()
            header = [_create_runner(app, entry, scale_set.generation, queue) for entry in entries]
            callback = app.signature(
                SUMMARIZE_BATCH, args=(batch_payload(scale_set, batch_id),), queue=queue
            )
            fence()
            chord(header, app=app)(callback)
        except Exception as exc:
            log.warning("batch %s of %s not enqueued: %s", batch_id, scale_set.key, exc)
            not_enqueued(exc)
            return
        finally:
            with self._enqueuing_lock:
                self._enqueuing[queue] -= len(entries)
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
                self._app = make_sending_celery(self.settings)
            return self._app


def _create_runner(app: Celery, entry: LedgerEntry, generation: int, queue: str) -> Signature:
    args = (entry.to_dict(), generation)
    # The arguments as Flower shows them, made by repr() in C: Celery's own safe repr of each
    # task's arguments was a tenth of the time a batch took to enqueue.
    return app.signature(
        CREATE_RUNNER, args=args, queue=queue, argsrepr=repr(args), kwargsrepr="{}"
    )


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
        self,
        scale_set: ScaleSet,
        batch_id: str,
        entries: list[LedgerEntry],
        fence: Fence,
        not_enqueued: NotEnqueued,
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

    def close(self) -> None:
        """Nothing of it runs once dispatch has returned."""
