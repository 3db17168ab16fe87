"""The Celery tasks: one ``create_runner`` per missing runner, grouped in a chord whose
callback ``summarize_batch`` reports the batch. Shared tasks: they bind to the app the worker
builds (workers.app.worker_app)."""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

import redis
from celery import Task, shared_task, signals
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from provisioner.config import load_settings
from provisioner.creation import outcome
from provisioner.creation.creator import CredentialPaused, RunnerCreator
from provisioner.creation.outcome import (
    CREATED,
    FAILED,
    SKIPPED,
    CreationResult,
    progress_milestone,
    summarize,
)
from provisioner.creation.report import report_batch
from provisioner.ledger import BatchProgress, LedgerEntry
from provisioner.runtime import Runtime
from provisioner.runtime.queue import CREATE_RUNNER, SUMMARIZE_BATCH
from workers import liveness

log = logging.getLogger(__name__)

# A batch report is retried through an API server outage, with backoff up to a minute, for
# about half an hour before it is given up.
REPORT_RETRIES = 40
REPORT_BACKOFF_MAX_SECONDS = 60
# A paused creation comes back at least this often to look again: Celery holds a countdown
# task in the worker's memory, and one held past the broker's visibility timeout (twice the
# creation timeout and more) would be delivered a second time.
MAX_COUNTDOWN = 30.0
# What Redis being away looks like, to redis-py and to kombu (the broker connection).
REDIS_AWAY = (redis.RedisError, OperationalError)
REQUEUE_RETRY_SECONDS = 1.0

_creator_lock = threading.Lock()
_creator: RunnerCreator | None = None


def process_creator() -> RunnerCreator:
    """This process's creator, built at first use: clients and connections are set up once
    and shared by every task thread."""
    global _creator
    if _creator is None:
        with _creator_lock:
            if _creator is None:
                runtime = Runtime(load_settings())
                # No task tells a worker that a scale set was deleted: it looks.
                runtime.scale_sets.forget_deleted_in_background(runtime.settings.namespace)
                _creator = RunnerCreator(runtime, requeue_when_paused=True)
    return _creator


@signals.worker_init.connect
def _prepare(**_: Any) -> None:
    """Build the creator before the first task (its clients import a great deal of code), and
    move what exists then out of the collector's way: a full collection would otherwise walk
    every module and client model again and again while runners are created."""
    try:
        process_creator()
    except Exception as exc:  # built at first use instead, where its error reaches a task
        log.warning("could not set up the runner creator at start (%s); will retry", exc)
    gc.freeze()


@shared_task(name=CREATE_RUNNER, bind=True, max_retries=None)
def create_runner(
    self: Task, entry: dict[str, Any], generation: int | None = None
) -> dict[str, Any]:
    """Create one runner. A failure is a result, so the chord's callback runs and sees the
    whole batch. A creation whose credential GitHub paused goes back to the queue until the
    pause ends (Celery's retry with a countdown): it holds no thread or slot meanwhile, and
    other tenants' creations go ahead."""
    liveness.task_started()
    try:
        result = _create(entry, generation)
    except CredentialPaused as paused:
        return _back_in_the_queue(self, entry, generation, paused)
    finally:
        liveness.task_finished()
    return result.to_dict()


def _back_in_the_queue(
    task: Task, entry: dict[str, Any], generation: int | None, paused: CredentialPaused
) -> dict[str, Any]:
    """Requeues a paused creation (Celery's Retry), or its result when it was cancelled
    meanwhile. Redis being away (the ledger, or the broker the retry is sent to) is waited
    out for up to the creation timeout: a retry that cannot be sent would drop the task, and
    the runner would wait for its ledger deadline to be planned again."""
    patience = time.monotonic() + process_creator().settings.runner_creation_timeout
    while True:
        try:
            later = _postponed(entry, paused.seconds)
            if later is None:  # cancelled while it waited: the batch counts it done
                result = _result_of(entry, SKIPPED, outcome.REASON_CANCELLED)
                _log_progress(process_creator(), result)
                return result.to_dict()
            log.info("runner %s: %s; back in the queue", later.name, paused)
            raise task.retry(
                args=(later.to_dict(), generation), countdown=min(paused.seconds, MAX_COUNTDOWN)
            ) from None
        except (redis.RedisError, Reject) as exc:
            # Reject: Celery's answer when the retry's message could not be sent.
            cause = exc.reason if isinstance(exc, Reject) else exc
            if not isinstance(cause, REDIS_AWAY) or time.monotonic() > patience:
                raise
            log.warning(
                "runner %s: Redis unavailable (%s); requeueing again", entry.get("name"), cause
            )
            time.sleep(REQUEUE_RETRY_SECONDS)


def _postponed(entry: dict[str, Any], seconds: float) -> LedgerEntry | None:
    """The entry with its deadline moved past the wait; None when it is no longer planned."""
    wait = min(seconds, MAX_COUNTDOWN)
    return process_creator().runtime.ledger.postpone(LedgerEntry.from_dict(entry), wait)


def _result_of(entry: dict[str, Any], kind: str, reason: str, detail: str = "") -> CreationResult:
    """A result for a task whose entry may not even parse."""
    return CreationResult(
        name=str(entry.get("name", "")),
        scale_set=str(entry.get("scale_set", "")),
        batch_id=str(entry.get("batch_id", "")),
        outcome=kind,
        reason=reason,
        detail=detail,
    )


def _create(entry: dict[str, Any], generation: int | None) -> CreationResult:
    try:
        ledger_entry = LedgerEntry.from_dict(entry)
    except ValueError as exc:
        log.error("create_runner got a task it cannot read: %s", exc)
        return _result_of(entry, FAILED, outcome.REASON_INTERNAL, str(exc))
    creator: RunnerCreator | None = None
    try:
        creator = process_creator()
        result = creator.create(ledger_entry, generation)
    except CredentialPaused:
        raise
    except Exception as exc:  # a bug or an outage nothing classified: report, do not lose
        log.exception("runner %s: creation crashed", ledger_entry.name)
        if creator is not None:
            # Planned anew at once rather than at the entry's deadline; whatever part of this
            # runner exists is an orphan that garbage collection removes.
            creator.runtime.complete(ledger_entry)
        return CreationResult(
            name=ledger_entry.name,
            scale_set=ledger_entry.scale_set,
            batch_id=ledger_entry.batch_id,
            outcome=FAILED,
            reason=outcome.REASON_INTERNAL,
            detail=f"{type(exc).__name__}: {exc}",
        )
    _log_progress(creator, result)
    return result


def _log_progress(creator: RunnerCreator, result: CreationResult) -> None:
    progress = BatchProgress(creator.runtime.redis)
    try:
        done, total = progress.record_outcome(result.batch_id, result.outcome)
        if not progress_milestone(done, total):
            return
        counts = (progress.get(result.batch_id) or {}).get("outcomes", {})
    except Exception:  # progress is a nicety; never fail a creation over it
        return
    log.info(
        "batch %s of %s: created %d/%d (%d failed, %d finished)",
        result.batch_id,
        result.scale_set,
        counts.get(CREATED, 0),
        total,
        counts.get(FAILED, 0),
        done,
    )


@shared_task(
    name=SUMMARIZE_BATCH,
    bind=True,
    # Whatever stops the report (the API server away, status writes racing past the
    # optimistic-concurrency retries) is retried: a lost report leaves ScalingUp=True.
    autoretry_for=(Exception,),
    max_retries=REPORT_RETRIES,
    retry_backoff=True,
    retry_backoff_max=REPORT_BACKOFF_MAX_SECONDS,
)
def summarize_batch(self: Task, results: list[dict[str, Any]], batch: dict[str, Any]) -> dict:
    creator = process_creator()
    summary = summarize(
        [CreationResult.from_dict(r) for r in results],
        batch["scale_set"],
        batch["batch_id"],
        time.time() - float(batch["started_at"]),
    )
    report_batch(creator.runtime.api, summary)
    return {"batch_id": summary.batch_id, "created": summary.created, "failed": summary.failed}
