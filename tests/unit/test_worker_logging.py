"""A worker's log: Celery's two lines per task (received; succeeded, with the whole result)
only at DEBUG, so that 10,000 runners do not write 20,000 lines from the task threads."""

from __future__ import annotations

import logging

import pytest

from provisioner.cli.worker import CELERY_TASK_LOGGERS, quiet_task_lines


@pytest.fixture(autouse=True)
def _restore_levels():
    names = ["", *CELERY_TASK_LOGGERS]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_at_info_celerys_per_task_lines_are_not_written():
    logging.getLogger().setLevel(logging.INFO)
    quiet_task_lines("INFO")
    for name in CELERY_TASK_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name


def test_at_debug_they_are():
    logging.getLogger().setLevel(logging.DEBUG)
    quiet_task_lines("DEBUG")
    for name in CELERY_TASK_LOGGERS:
        assert logging.getLogger(name).isEnabledFor(logging.INFO), name
