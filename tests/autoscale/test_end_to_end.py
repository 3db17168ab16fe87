"""The whole product follows the job queue: the simulator enqueues a burst of jobs and sends
webhooks, the autoscaler sets spec.replicas, the reconciler and workers create the runners, the
test plays kubelet and runner (pods run, runners connect and take jobs, pods exit), and when all
jobs are done the fleet returns to minRunners with nothing left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from kubernetes import client as k8s

from provisioner.autoscale.runner import AutoscalerLoops
from tests.autoscale.conftest import REPOSITORY, AutoscaleEnv, wait_for
from tests.fixtures.kubelet import Kubelet

pytestmark = pytest.mark.integration

JOBS = 20


class RunnerPlayer:
    """Plays the runner inside each pod: once the pod runs, the runner connects (online);
    once its registration is gone (the job finished and it deregistered), the pod exits."""

    def __init__(self, env: AutoscaleEnv, kubelet: Kubelet) -> None:
        self.env = env
        self.kubelet = kubelet
        self.core = k8s.CoreV1Api(env.api)
        self.connected: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runner-player", daemon=True)

    def __enter__(self) -> RunnerPlayer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._step()
            except Exception:  # a pod deleted between list and patch; the next step sees it
                continue

    def _step(self) -> None:
        registrations = {r["name"]: r for r in self.env.ghsim.admin.registrations()}
        for pod in self.core.list_namespaced_pod(self.env.namespace).items:
            name = pod.metadata.name
            if pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
                continue
            registration = registrations.get(name)
            if registration is not None and registration["status"] == "offline":
                self.env.ghsim.admin.set_runner_state(name, "online")
                self.connected.add(name)
            elif registration is None and name in self.connected:
                self.kubelet.finish(name)


def test_a_burst_of_jobs_gets_runners_and_the_fleet_returns_to_min_without_leaks(
    pipeline, autoscale_env: AutoscaleEnv, kubelet: Kubelet, loops: Callable[..., AutoscalerLoops]
) -> None:
    env = autoscale_env
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set("runners", replicas=0, max_runners=JOBS)
    env.autoscaler.scale_down_delay_s = 1.0
    loops()
    kubelet.auto_run()
    with RunnerPlayer(env, kubelet):
        started = time.monotonic()
        env.jobs.enqueue(REPOSITORY, ["self-hosted", "linux"], count=JOBS, duration_s=0.5)

        def every_job_has_had_a_runner() -> bool:
            counts = env.jobs.jobs()["counts"]
            return counts["queued"] == 0 and counts["in_progress"] + counts["completed"] == JOBS

        wait_for(every_job_has_had_a_runner, 180, f"all {JOBS} jobs to get a runner")
        assigned_s = time.monotonic() - started
        wait_for(lambda: env.jobs.jobs()["counts"]["completed"] == JOBS, 60, "all jobs done")
        wait_for(lambda: pipeline.scale_set("runners")["spec"]["replicas"] == 0, 30, "replicas 0")
        pipeline.wait_for_runners(0, timeout=120)
    print(f"{JOBS} jobs: every job had a runner {assigned_s:.1f}s after the burst")
    assert env.store.active(f"{env.namespace}/runners") == 0
