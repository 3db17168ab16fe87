"""A worker's log: Celery's received and succeeded line of each task only at DEBUG, so
that 10,000 runners do not write 20,000 lines from the task threads; its other lines (a task
retried, failed) as before."""

from __future__ import annotations

import logging

import pytest
from celery.app.trace import LOG_RECEIVED, LOG_RETRY, LOG_SUCCESS

from provisioner.cli.worker import CELERY_TASK_LOGGERS, quiet_task_lines


@pytest.fixture(autouse=True)
def _restore_filters():
    saved = {name: list(logging.getLogger(name).filters) for name in CELERY_TASK_LOGGERS}
    yield
    for name, filters in saved.items():
        logging.getLogger(name).filters = filters


def _written(logger: str, fmt: str) -> bool:
    record = logging.LogRecord(logger, logging.INFO, __file__, 1, fmt, None, None)
    return bool(logging.getLogger(logger).filter(record))


def test_at_info_the_received_and_succeeded_lines_are_dropped_and_retries_kept():
    quiet_task_lines("INFO")
    assert not _written("celery.worker.strategy", LOG_RECEIVED)
    assert not _written("celery.app.trace", LOG_SUCCESS)
    assert _written("celery.app.trace", LOG_RETRY)


def test_at_debug_every_line_is_kept():
    quiet_task_lines("DEBUG")
    assert _written("celery.worker.strategy", LOG_RECEIVED)
    assert _written("celery.app.trace", LOG_SUCCESS)
