"""``provisioner worker``: a Celery worker with our app, our queue and our defaults."""

from __future__ import annotations

import argparse
import logging
import os
import socket

from provisioner.cli.flags import add_settings_flags, settings_from_args

# Threads per slot of the global creation budget: calls a slow tenant's GitHub holds open stop
# counting against the budget after a lease, but they still hold their threads.
THREADS_PER_SLOT = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="create runners: a Celery worker (scale it horizontally)",
        description="Run a Celery worker that creates runners from the queue. Start as many as "
        "you like: the creation budget and rate limits are global, kept in Redis.",
    )
    parser.add_argument(
        "--hostname",
        default=f"worker-{os.getpid()}@{socket.gethostname()}",
        help="Celery node name (unique per worker)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="pool threads of this worker (default: twice --runner-creation-concurrency, so "
        "one worker alone can use the whole global budget while a slow tenant's calls hold "
        "threads; the budget, not the pool, limits)",
    )
    add_settings_flags(parser)
    parser.set_defaults(func=_run)


# Celery's two lines per task (received; succeeded, with the whole result), 20,000 lines for
# 10,000 runners written from the task threads, cost 1.2 ms of a worker's CPU a runner at
# INFO. Our own lines say what a user needs (each runner that failed or was handed back, a
# batch's progress and its end); Celery's other lines (a task retried, failed) stay.
CELERY_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


class _PerTaskLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

        return record.msg not in (LOG_RECEIVED, LOG_SUCCESS)


def quiet_task_lines(level: str) -> None:
    """Celery's received and succeeded line of each task only at DEBUG."""
    if logging.getLevelName(level) != logging.DEBUG:
        for name in CELERY_TASK_LOGGERS:
            logging.getLogger(name).addFilter(_PerTaskLines())


def _run(args: argparse.Namespace) -> int:
    from provisioner.cli import CommandError, configure_logging
    from provisioner.cli.preflight import check_process_settings
    from provisioner.config import export_to_environ

    settings = settings_from_args(args)
    check_process_settings(settings)
    threads = args.threads or THREADS_PER_SLOT * settings.runner_creation_concurrency
    if threads < 1 or threads > 1000:
        raise CommandError(f"--threads must be between 1 and 1000, got {threads}")
    export_to_environ(settings)
    configure_logging(settings.log_level)
    quiet_task_lines(settings.log_level)

    from provisioner.runtime.queue import QUEUE, shard_queues
    from workers.app import worker_app
    from workers.liveness import start_ops_server

    start_ops_server(settings)
    worker_app(settings).worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={threads}",
            f"--queues={','.join([QUEUE, *shard_queues()])}",
            f"--hostname={args.hostname}",
            f"--loglevel={settings.log_level}",
            # Workers need not know each other: the limits are in Redis.
            "--without-mingle",
            "--without-gossip",
        ]
    )
    return 0
