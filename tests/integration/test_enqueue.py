"""Enqueueing a batch does not hold the reconcile loop: a big scale-up's tasks take seconds to
enqueue, and meanwhile another scale set's few runners are planned and queued."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import redis

from provisioner.config import Settings
from provisioner.devenv.procs import log_tail
from provisioner.kube.leader import LostLeadership
from provisioner.ledger import LedgerEntry
from provisioner.reconciler.dispatch import ChordDispatcher
from provisioner.runtime.queue import shard_queues
from tests.fixtures.pipeline import TestPipeline as Pipeline
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

# Within what one credential's hourly budget lets the reconciler plan (a creation and a
# removal each), and seconds of enqueueing on any machine.
BIG = 2000
SMALL = 5


def _queued(client: redis.Redis) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for queue in shard_queues():
        pipe.llen(queue)
    return [int(length) for length in pipe.execute()]


def test_a_small_batch_is_queued_while_a_big_one_is_still_being_enqueued(pipeline: Pipeline):
    pipeline.apply_scale_set("big", 0)
    pipeline.apply_scale_set("small", 0)
    # No workers: the tasks stay in the shard queues, where the test counts them.
    pipeline.start_reconciler()
    client = redis.Redis.from_url(pipeline.redis_url)
    log = pipeline.log_dir / "reconciler-0.log"

    pipeline.scale("big", BIG)
    planned = f"{pipeline.namespace}/big: planned"
    wait_until(lambda: planned in log_tail(log, 200), 30, "big's batch planned")
    pipeline.scale("small", SMALL)

    # Each batch has a shard queue of its own while the other shards are empty.
    wait_until(lambda: max(_queued(client)) > SMALL, 30, "big's first tasks queued")
    lengths = _queued(client)
    big = lengths.index(max(lengths))
    big_queued_then = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lengths = _queued(client)
        if any(length == SMALL for i, length in enumerate(lengths) if i != big):
            big_queued_then = lengths[big]
            break
        time.sleep(0.005)
    assert big_queued_then is not None, f"small's {SMALL} tasks never queued: {_queued(client)}"
    print(f"small's tasks queued when {big_queued_then} of big's {BIG} were")
    assert big_queued_then < BIG, "small's batch waited for the whole of big's to be enqueued"
    wait_until(lambda: _queued(client)[big] == BIG, 60, "big's whole batch queued")


def test_a_batch_a_deposed_leader_hands_on_is_not_enqueued_and_is_reported(redis_url: str):
    """The fence is checked in the enqueueing thread right before the tasks are sent; the
    batch it stops is reported, so the reconciler forgets the plan."""
    client = redis.Redis.from_url(redis_url)
    dispatcher = ChordDispatcher(Settings(redis_url=redis_url), client)
    scale_set = SimpleNamespace(key="ns/deposed", generation=1)
    entries = [
        LedgerEntry("ns/deposed", f"deposed-{i}", "batch", time.time() + 60) for i in range(3)
    ]
    reported: list[Exception] = []

    def fence() -> None:
        raise LostLeadership("another reconciler holds the Lease")

    dispatcher.dispatch(scale_set, "batch", entries, fence, reported.append)  # type: ignore[arg-type]
    dispatcher.close()
    assert [type(error) for error in reported] == [LostLeadership]
    assert sum(_queued(client)) == 0


def _subscribes(client: redis.Redis) -> int:
    stats = client.info("commandstats").get("cmdstat_subscribe") or {}
    return int(stats.get("calls", 0))


def test_enqueueing_a_batch_does_not_watch_for_its_results(redis_url: str):
    """The reconciler never waits for a creation's result (the chord's callback reports the
    batch): Celery subscribed twice to each task's result channel, and unsubscribed, four
    Redis commands per runner, and Redis then pushed every result to a connection that never
    read them."""
    client = redis.Redis.from_url(redis_url)
    dispatcher = ChordDispatcher(Settings(redis_url=redis_url), client)
    scale_set = SimpleNamespace(key="ns/unwatched", generation=1)
    runners = 50
    entries = [
        LedgerEntry("ns/unwatched", f"unwatched-{i}", "batch", time.time() + 60)
        for i in range(runners)
    ]
    before, queued_before = _subscribes(client), sum(_queued(client))
    reported: list[Exception] = []
    try:
        dispatcher.dispatch(scale_set, "batch", entries, lambda: None, reported.append)  # type: ignore[arg-type]
        dispatcher.close()
        assert reported == []
        assert sum(_queued(client)) - queued_before == runners
        assert _subscribes(client) - before == 0
    finally:
        # The session's Redis serves later tests' workers: they must not get these tasks.
        for queue in shard_queues():
            for message in client.lrange(queue, 0, -1):
                if b"ns/unwatched" in message:
                    client.lrem(queue, 1, message)
