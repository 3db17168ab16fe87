"""The task queue: the Celery app, configured for many short I/O-bound tasks that must not
be lost, and the names of the tasks. Built when a worker or a dispatcher asks for it, never on
import; the dispatcher sends tasks by name, so it needs none of the workers' code."""

from __future__ import annotations

from collections.abc import Mapping

import redis
from celery import Celery
from celery.backends.redis import RedisBackend, ResultConsumer

from provisioner.config import Settings

QUEUE = "runners"
CREATE_RUNNER = "provisioner.create_runner"
SUMMARIZE_BATCH = "provisioner.summarize_batch"
# A batch's creations go to one of these queues, and workers take from all of them in turn
# (the Redis transport rotates the queues it reads after each message). So a small scale-up
# is not queued behind a big one of another scale set: each gets a share of the workers.
SHARDS = 8


def shard_queues() -> list[str]:
    return [f"{QUEUE}.{index}" for index in range(SHARDS)]


def least_loaded_shard(redis_client: redis.Redis, enqueuing: Mapping[str, int]) -> str:
    """The shard queue with the fewest waiting tasks (an idle one when there is one), counting
    those still ``enqueuing`` by this process, so two batches queued at once share a queue only
    when more than SHARDS are queued."""
    queues = shard_queues()
    pipe = redis_client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
    lengths = pipe.execute()
    loads = [
        int(length) + enqueuing.get(queue, 0) for length, queue in zip(lengths, queues, strict=True)
    ]
    return min(zip(loads, queues, strict=True))[1]


def visibility_timeout(settings: Settings) -> int:
    """Seconds before Redis hands an unacknowledged task to another worker: above one runner's
    creation timeout (so a slow creation is not run twice), short enough that a killed
    worker's tasks come back within a minute or two."""
    return int(settings.runner_creation_timeout * 2 + 30)


class _UnwatchedResults(ResultConsumer):
    def consume_from(self, task_id: str) -> None:
        """Subscribes to nothing."""


class SendOnlyRedisBackend(RedisBackend):
    """The result backend of an app that sends tasks and never waits for their results (the
    dispatcher). Celery's own subscribes to each task's result channel twice as a chord is
    sent (for the task, and for the group's barrier) and unsubscribes as the results are
    collected: four Redis commands per runner, and Redis pushing every result to a
    connection that never reads them."""

    ResultConsumer = _UnwatchedResults


def make_celery(settings: Settings, include: tuple[str, ...] = ()) -> Celery:
    """A Celery app on ``settings``' Redis; ``include`` names the modules defining tasks (a
    worker's), none for an app that only sends them."""
    app = Celery("provisioner")
    _configure(app, settings, settings.redis_connection_url(), include)
    return app


def make_sending_celery(settings: Settings) -> Celery:
    """The dispatcher's app: it sends tasks and never waits for their results."""
    url = settings.redis_connection_url()
    app = Celery("provisioner")
    _configure(app, settings, f"{__name__}:{SendOnlyRedisBackend.__name__}+{url}")
    return app


def _configure(
    app: Celery, settings: Settings, backend: str, include: tuple[str, ...] = ()
) -> None:
    """Our queue's configuration, on ``settings``' Redis, with the result ``backend``."""
    transport = {"visibility_timeout": visibility_timeout(settings)}
    app.conf.update(
        broker_url=settings.redis_connection_url(),
        result_backend=backend,
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
        include=list(include),
    )
