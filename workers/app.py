"""The Celery app, configured for many short I/O-bound tasks that must not be lost.

Settings come from the environment (``PROVISIONER_*``), which `provisioner worker` and the
reconciler fill from their flags before importing this module."""

from __future__ import annotations

from celery import Celery

from provisioner.config import Settings, load_settings

QUEUE = "runners"


def visibility_timeout(settings: Settings) -> int:
    """Seconds before Redis hands an unacknowledged task to another worker: above one runner's
    creation timeout (so a slow creation is not run twice), short enough that a killed
    worker's tasks come back within a minute or two."""
    return int(settings.runner_creation_timeout * 2 + 30)


def make_celery(settings: Settings) -> Celery:
    app = Celery("provisioner", broker=settings.redis_url, backend=settings.redis_url)
    transport = {"visibility_timeout": visibility_timeout(settings)}
    app.conf.update(
        # JSON only: a task's arguments are ledger entries and results, never code or secrets.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # A task is acknowledged when it is done; a worker that dies mid-task (SIGKILL, OOM)
        # leaves it to be delivered again, and the idempotent task finishes the job.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One reserved task per pool thread: tasks wait in Redis, where any worker can take
        # them, not in a busy worker's prefetch buffer.
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        result_backend_always_retry=True,
        result_backend_max_retries=30,
        result_expires=24 * 3600,
        # Task events cost every task a few Redis round trips. Flower turns them on in the
        # workers while it runs (its enable_events, on by default), so they are off otherwise;
        # no "sent" event either, which would double the cost of enqueueing a batch.
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        include=["workers.tasks"],
    )
    return app


app = make_celery(load_settings())
