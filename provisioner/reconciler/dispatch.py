"""Handing planned runners to whoever creates them: a Celery chord (parallel), or the
reconciler itself, one after another (``--no-parallel-creation``, the ARC-like path)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from provisioner.kube.scaleset import ScaleSet
from provisioner.ledger import LedgerEntry

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    # True when dispatch returns only after the runners were created.
    synchronous: bool

    def dispatch(self, scale_set: ScaleSet, batch_id: str, entries: list[LedgerEntry]) -> None: ...


def batch_payload(scale_set: ScaleSet, batch_id: str) -> dict:
    return {"scale_set": scale_set.key, "batch_id": batch_id, "started_at": time.time()}


class ChordDispatcher:
    """One ``create_runner`` task per runner, and ``summarize_batch`` when all have answered."""

    synchronous = False

    def dispatch(self, scale_set: ScaleSet, batch_id: str, entries: list[LedgerEntry]) -> None:
        from celery import chord

        from workers.tasks import create_runner, summarize_batch

        header = [create_runner.s(entry.to_dict(), scale_set.generation) for entry in entries]
        chord(header)(summarize_batch.s(batch_payload(scale_set, batch_id)))
        log.info("batch %s of %s: %d runners enqueued", batch_id, scale_set.key, len(entries))


class SequentialDispatcher:
    """Creates the batch in the calling thread with the same code the workers run."""

    synchronous = True

    def __init__(self, context):
        from workers.creation import RunnerCreator

        self.context = context
        self.creator = RunnerCreator(context)
        # Called after each runner: the reconcile loop is busy here, not stuck.
        self.on_progress: Callable[[], None] = lambda: None

    def dispatch(self, scale_set: ScaleSet, batch_id: str, entries: list[LedgerEntry]) -> None:
        from workers.outcome import progress_milestone, summarize
        from workers.report import report_batch

        started = time.time()
        results = []
        for entry in entries:
            results.append(self.creator.create(entry, scale_set.generation))
            self.on_progress()
            created = sum(1 for r in results if r.ok)
            if progress_milestone(len(results), len(entries)):
                log.info(
                    "batch %s of %s: created %d/%d", batch_id, scale_set.key, created, len(entries)
                )
        report_batch(
            self.context.api,
            summarize(results, scale_set.key, batch_id, time.time() - started),
        )
