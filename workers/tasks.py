"""The Celery tasks: one ``create_runner`` per missing runner, grouped in a chord whose
callback ``summarize_batch`` reports the batch."""

from __future__ import annotations

import logging
import threading
import time

from provisioner.config import load_settings
from provisioner.ledger import BatchProgress, LedgerEntry
from workers import liveness
from workers.app import app
from workers.context import WorkerContext
from workers.creation import RunnerCreator
from workers.outcome import CREATED, FAILED, CreationResult, progress_milestone, summarize
from workers.report import report_batch

log = logging.getLogger(__name__)

_context_lock = threading.Lock()
_creator: RunnerCreator | None = None


def process_creator() -> RunnerCreator:
    """This process's creator, built at first use: clients and connections are set up once
    and shared by every task thread."""
    global _creator
    if _creator is None:
        with _context_lock:
            if _creator is None:
                _creator = RunnerCreator(WorkerContext(load_settings()))
    return _creator


@app.task(name="provisioner.create_runner")
def create_runner(entry: dict, generation: int | None = None) -> dict:
    """Create one runner. Never raises: a failure is a result, so the chord's callback runs
    and sees the whole batch."""
    creator = process_creator()
    ledger_entry = LedgerEntry.from_dict(entry)
    liveness.task_started()
    try:
        result = creator.create(ledger_entry, generation)
    except Exception as exc:  # a bug or an outage we did not classify: report, do not lose
        log.exception("runner %s: creation crashed", ledger_entry.name)
        # Planned anew at once rather than at the entry's deadline; whatever part of this
        # runner exists is an orphan that garbage collection removes.
        creator.context.complete(ledger_entry)
        result = CreationResult(
            name=ledger_entry.name,
            scale_set=ledger_entry.scale_set,
            batch_id=ledger_entry.batch_id,
            outcome=FAILED,
            reason=f"internal error: {type(exc).__name__}",
        )
    finally:
        liveness.task_finished()
    _log_progress(creator, result)
    return result.to_dict()


def _log_progress(creator: RunnerCreator, result: CreationResult) -> None:
    progress = BatchProgress(creator.context.redis)
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


@app.task(name="provisioner.summarize_batch")
def summarize_batch(results: list[dict], batch: dict) -> dict:
    creator = process_creator()
    summary = summarize(
        [CreationResult.from_dict(r) for r in results],
        batch["scale_set"],
        batch["batch_id"],
        time.time() - float(batch["started_at"]),
    )
    report_batch(creator.context.api, summary)
    return {"batch_id": summary.batch_id, "created": summary.created, "failed": summary.failed}
