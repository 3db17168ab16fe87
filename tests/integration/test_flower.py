"""Flower, started the way users start it, sees the workers' tasks: the workers send task
events only while a monitor asks for them, and Flower asks."""

from __future__ import annotations

import sys

import httpx
import pytest

from provisioner.devenv.procs import ServerProcess, free_port, log_tail
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration


AUTH = ("ops", "flower-test-password")


def _api(port: int, path: str, **params: str) -> dict:
    response = httpx.get(f"http://127.0.0.1:{port}/api/{path}", params=params, auth=AUTH, timeout=5)
    response.raise_for_status()
    return response.json()


def _creation_states(port: int) -> set[str]:
    tasks = _api(port, "tasks", taskname="provisioner.create_runner")
    return {task["state"] for task in tasks.values()}


def test_flower_lists_the_creations_of_a_batch(pipeline):
    pipeline.start_workers(1)
    port = free_port()
    flower = ServerProcess(
        "flower",
        [
            sys.executable,
            "-m",
            "provisioner",
            "flower",
            "--port",
            str(port),
            "--",
            f"--basic-auth={':'.join(AUTH)}",
        ],
        pipeline.log_dir / "flower.log",
        env=pipeline.env,
    )
    flower.start()
    try:
        flower.wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1).status_code == 200,
            timeout=60,
        )
        # Flower turns the workers' task events on every few seconds; the worker logs it.
        (worker,) = pipeline.workers.processes
        wait_until(
            lambda: "enabled by remote" in log_tail(worker.log_path, 200),
            timeout=30,
            what="Flower to turn the worker's task events on",
        )
        pipeline.start_reconciler()
        pipeline.apply_scale_set(replicas=3)
        pipeline.wait_for_runners(3)
        # Started or succeeded: with Celery 5.6 (pinned, see pyproject.toml) Flower now and
        # then misses the success event of a task a thread-pool worker ran, and shows it as
        # started; the worker's log and the batch report have it as created.
        wait_until(
            lambda: (
                _creation_states(port) <= {"STARTED", "SUCCESS"}
                and len(_api(port, "tasks", taskname="provisioner.create_runner")) == 3
            ),
            timeout=30,
            what="Flower to list the 3 creations",
        )
    finally:
        flower.stop(timeout=15)
