"""The fleet follows the job queue: the simulator plays jobs and sends signed webhooks, the
autoscaler writes spec.replicas through the scale subresource."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import REGISTRY

from provisioner.autoscale.demand import JobStatus
from provisioner.autoscale.events import JobEvent
from provisioner.autoscale.runner import AutoscalerLoops
from provisioner.autoscale.service import Autoscaler
from provisioner.autoscale.store import DemandStore
from tests.autoscale.conftest import LABELS, REPOSITORY, AutoscaleEnv, wait_for


def completed(env: AutoscaleEnv) -> int:
    return env.jobs.jobs()["counts"]["completed"]


def assignment_count(scale_set: str) -> float:
    sample = REGISTRY.get_sample_value(
        "provisioner_autoscale_job_assignment_seconds_count", {"scale_set": scale_set}
    )
    return sample or 0.0


def test_a_burst_scales_up_within_max_and_back_to_min_after_the_delay(
    autoscale_env: AutoscaleEnv, loops: Callable[..., AutoscalerLoops]
) -> None:
    env = autoscale_env
    key = env.create_scale_set("burst", min_runners=1, max_runners=6)
    env.autoscaler.scale_down_delay_s = 3.0
    assigned_before = assignment_count(key)
    loops()
    env.jobs.enqueue(REPOSITORY, LABELS, count=10, duration_s=0.3)
    seen: list[int] = []

    def at_max() -> bool:
        seen.append(env.replicas("burst"))
        return seen[-1] == 6

    wait_for(at_max, 20, "spec.replicas to reach maxRunners")
    wait_for(lambda: env.store.queued(key) == 10, 20, "10 queued jobs recorded")
    env.start_runners(10)
    wait_for(lambda: completed(env) == 10, 20, "every job to complete")
    # Demand is gone, but replicas wait for the scale-down delay.
    assert env.replicas("burst") == 6
    wait_for(lambda: env.replicas("burst") == 1, 20, "spec.replicas back to minRunners")
    assert max(seen) <= 6
    assert env.store.active(key) == 0
    assert assignment_count(key) - assigned_before == 10
    assert env.jobs.webhooks()["deliveries"]["delivered"] == 30


def test_jobs_go_to_the_scale_set_whose_labels_they_ask_for(
    autoscale_env: AutoscaleEnv, loops: Callable[..., AutoscalerLoops]
) -> None:
    env = autoscale_env
    env.create_scale_set("cpu", min_runners=0, max_runners=10)
    env.create_scale_set("gpu", min_runners=0, max_runners=10, labels=[*LABELS, "gpu"])
    loops()
    env.jobs.enqueue(REPOSITORY, ["self-hosted", "gpu"], count=3, duration_s=1)
    env.jobs.enqueue(REPOSITORY, ["self-hosted"], count=2, duration_s=1)
    wait_for(
        lambda: (env.replicas("gpu"), env.replicas("cpu")) == (3, 2),
        20,
        "3 gpu and 2 cpu replicas",
    )


def test_with_webhooks_off_polling_alone_sizes_the_fleet(
    autoscale_env: AutoscaleEnv, loops: Callable[..., AutoscalerLoops]
) -> None:
    env = autoscale_env
    env.jobs.configure_webhooks(enabled=False)
    env.create_scale_set("polled", min_runners=1, max_runners=10)
    env.autoscaler.scale_down_delay_s = 0.0
    loops(poll_interval_s=0.3)
    env.jobs.enqueue(REPOSITORY, LABELS, count=4, duration_s=0.2)
    wait_for(lambda: env.replicas("polled") == 5, 20, "minRunners + 4 replicas from polling")
    env.start_runners(4)
    wait_for(lambda: completed(env) == 4, 20, "every job to complete")
    wait_for(lambda: env.replicas("polled") == 1, 20, "replicas back to minRunners by polling")
    deliveries = env.jobs.webhooks()["deliveries"]
    assert deliveries["delivered"] == 0
    assert deliveries["suppressed"] > 0


def test_polling_completes_jobs_whose_completed_webhook_was_lost(
    autoscale_env: AutoscaleEnv, loops: Callable[..., AutoscalerLoops]
) -> None:
    env = autoscale_env
    key = env.create_scale_set("lossy", min_runners=0, max_runners=10)
    env.autoscaler.scale_down_delay_s = 0.0
    loops()
    env.jobs.enqueue(REPOSITORY, LABELS, count=3, duration_s=0.2)
    wait_for(lambda: env.replicas("lossy") == 3, 20, "3 replicas from webhooks")
    env.jobs.configure_webhooks(enabled=False)
    env.start_runners(3)
    wait_for(lambda: completed(env) == 3, 20, "every job to complete")
    time.sleep(0.5)
    assert env.store.active(key) == 3  # no webhook said so
    # One listing that misses a job is not proof enough; the second one is.
    assert env.autoscaler.poll() == 0
    assert env.autoscaler.poll() == 3
    assert env.store.active(key) == 0
    wait_for(lambda: env.replicas("lossy") == 0, 10, "replicas back to 0")


def test_polling_completes_jobs_of_an_organization_scale_set(
    autoscale_env: AutoscaleEnv, loops: Callable[..., AutoscalerLoops]
) -> None:
    env = autoscale_env
    key = env.create_scale_set(
        "org", 0, 10, github_config_url="https://github.com/" + REPOSITORY.split("/")[0]
    )
    env.autoscaler.scale_down_delay_s = 0.0
    loops()
    env.jobs.enqueue(REPOSITORY, LABELS, count=2, duration_s=0.2)
    wait_for(lambda: env.replicas("org") == 2, 20, "2 replicas from webhooks")
    env.jobs.configure_webhooks(enabled=False)
    env.start_runners(2)
    wait_for(lambda: completed(env) == 2, 20, "both jobs to complete")
    assert env.autoscaler.poll() == 0
    assert env.autoscaler.poll() == 2
    assert env.store.active(key) == 0
    wait_for(lambda: env.replicas("org") == 0, 10, "replicas back to 0")


def test_a_job_whose_completion_never_comes_stops_holding_a_runner(
    autoscale_env: AutoscaleEnv,
) -> None:
    env = autoscale_env
    key = env.create_scale_set("lost", min_runners=0, max_runners=3)
    autoscaler = Autoscaler(DemandStore(env.redis, job_ttl_s=1), env.targets, scale_down_delay_s=0)
    event = JobEvent(job_id=7, status=JobStatus.QUEUED, labels=tuple(LABELS), repository=REPOSITORY)
    assert autoscaler.record(event).outcome == "applied"
    autoscaler.sync()
    assert env.replicas("lost") == 1
    # No completed event and no polling: after the TTL the job no longer counts.
    wait_for(lambda: autoscaler.sync() or env.replicas("lost") == 0, 10, "replicas back to 0")
    assert env.store.active(key) == 0
