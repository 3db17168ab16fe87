"""Creations beyond a credential's slots, in a worker with more threads than slots (twice as
many by default, more with several workers): they wait for a slot in their thread when the
slots come free soon, and go back to the queue only when they do not."""

from __future__ import annotations

import pytest

from tests.fixtures.pipeline import TestPipeline as Pipeline

pytestmark = pytest.mark.integration

RUNNERS = 40
CONCURRENCY = 4
THREADS = 3 * CONCURRENCY


def _handed_back(pipeline: Pipeline) -> int:
    """Creations the workers handed back to the queue because the credential's slots were
    busy (the worker log's line for it, which Flower shows as a retry)."""
    return sum(
        path.read_text().count("its creation slots are busy")
        for path in pipeline.workers.log_dir.glob("worker-*.log")
    )


def test_creations_wait_for_slots_that_turn_over_instead_of_going_back_to_the_queue(pipeline):
    """With 300 ms calls and 4 slots, 4 slots come free about every 300 ms: each of the 8
    creations waiting gets one within about 600 ms. Handed back to the queue, a creation
    came back only a second later, while its slot went unused: the last runners of a batch
    came up to a second late."""
    pipeline.ghsim.admin.slow_credential(300, token=pipeline.ghsim.token)
    try:
        env = {**pipeline.env, "PROVISIONER_RUNNER_CREATION_CONCURRENCY": str(CONCURRENCY)}
        pipeline.workers.start(env, extra_args=["--threads", str(THREADS)])
        pipeline.start_reconciler(env)
        pipeline.apply_scale_set(replicas=RUNNERS)
        pipeline.wait_for_runners(RUNNERS, timeout=90)
    finally:
        pipeline.ghsim.admin.restore_credential(token=pipeline.ghsim.token)
    assert _handed_back(pipeline) == 0
    pipeline.scale("runners", 0)
    pipeline.wait_for_runners(0, timeout=90)
