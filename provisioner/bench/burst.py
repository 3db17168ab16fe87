"""The job-burst case of ``provisioner bench``: N jobs enqueued in the simulator at once, the
webhook autoscaler scales a RunnerScaleSet from 0, the reconciler and workers create the
runners, and this process plays kubelet and runner until every job is done and the fleet is
back at minRunners (0). Measures the time to N runners ready, to all jobs done, and leaks."""

from __future__ import annotations

import argparse
import datetime
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client as k8s
from rich.table import Table

from provisioner.bench.report import Leaks
from provisioner.devenv.pipeline import SCALE_SET_LABEL, LocalPipeline, count_fleet
from provisioner.devenv.procs import ServerProcess, free_port, log_tail
from provisioner.ghsim.admin import SimulatorAdmin
from provisioner.ghsim.jobs import JobsAdmin
from provisioner.kube.crd import GROUP, PLURAL, VERSION

MAX_JOBS = 5000
# The repository of scale_set_manifest's githubConfigUrl; the labels are a subset of its labels.
REPOSITORY = "octo-org/octo-repo"
JOB_LABELS = ["self-hosted", "linux"]
JOB_DURATION_S = 1.0
PLAY_INTERVAL_S = 0.2
SCALE_DOWN_DELAY_S = 1.0


def jobs_burst(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of jobs, got {text!r}") from None
    if not 1 <= value <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_JOBS}, got {value}")
    return value


@dataclass(frozen=True)
class JobBurstResult:
    jobs: int
    github_latency_ms: float
    # Seconds from the enqueue call: every runner online, every job taken, every job done,
    # and the fleet back at 0 runners (None: not reached within the timeout).
    runners_ready_s: float | None
    jobs_assigned_s: float | None
    jobs_completed_s: float | None
    back_to_min_s: float | None
    runners_connected: int
    leaks: Leaks

    def table(self) -> Table:
        table = Table(title=f"job burst: {self.jobs} jobs through webhooks")
        for column in (
            "jobs",
            "runners ready s",
            "jobs assigned s",
            "jobs done s",
            "back to min s",
            "runners online",
            "leaks",
        ):
            table.add_column(column, justify="right")
        table.add_row(
            str(self.jobs),
            *(
                "-" if value is None else f"{value:.2f}"
                for value in (
                    self.runners_ready_s,
                    self.jobs_assigned_s,
                    self.jobs_completed_s,
                    self.back_to_min_s,
                )
            ),
            str(self.runners_connected),
            f"{self.leaks.total} ({self.leaks.registrations} reg, {self.leaks.secrets} "
            f"secrets, {self.leaks.pods} pods)",
        )
        return table

    @property
    def complete(self) -> bool:
        return self.jobs_completed_s is not None and self.leaks.total == 0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FleetPlayer:
    """Plays kubelet and runner for one scale set: a new pod runs; once it runs, its runner
    connects (online) and the simulator hands it a job; once its registration is gone (the
    job finished and the ephemeral runner deregistered), the pod exits successfully."""

    def __init__(self, api: k8s.ApiClient, admin: SimulatorAdmin, namespace: str, name: str):
        self.core = k8s.CoreV1Api(api)
        self.admin = admin
        self.namespace = namespace
        self.selector = f"{SCALE_SET_LABEL}={name}"
        self.connected: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fleet-player", daemon=True)

    def __enter__(self) -> FleetPlayer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def nth_connected(self, n: int) -> float | None:
        times = sorted(self.connected.values())
        return times[n - 1] if len(times) >= n else None

    def _loop(self) -> None:
        while not self._stop.wait(PLAY_INTERVAL_S):
            try:
                self._step()
            except Exception:  # a pod deleted between list and patch; the next step sees it
                continue

    def _step(self) -> None:
        registrations = {r["name"]: r for r in self.admin.registrations()}
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
        for pod in pods:
            name = pod.metadata.name
            phase = pod.status.phase if pod.status else None
            if pod.metadata.deletion_timestamp or phase in ("Succeeded", "Failed"):
                continue
            registration = registrations.get(name)
            if phase != "Running":
                self._patch(name, "Running", {"running": {"startedAt": _now()}}, ready=True)
            elif registration is not None and registration["status"] == "offline":
                if name not in self.connected:
                    self.admin.set_runner_state(name, "online")
                    self.connected[name] = time.monotonic()
            elif registration is None and name in self.connected:
                now = _now()
                terminated = {"exitCode": 0, "reason": "Completed", "startedAt": now}
                self._patch(name, "Succeeded", {"terminated": terminated}, ready=False)

    def _patch(self, name: str, phase: str, state: dict, ready: bool) -> None:
        now = _now()
        conditions = [
            {"type": kind, "status": str(ready), "lastTransitionTime": now}
            for kind in ("Ready", "ContainersReady")
        ]
        status = {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [
                {
                    "name": "runner",
                    "image": "runner",
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
        self.core.patch_namespaced_pod_status(name, self.namespace, {"status": status})


def start_webhook(
    pipeline: LocalPipeline, namespace: str, secret: str
) -> tuple[ServerProcess, str]:
    """``provisioner webhook`` as users run it, on a free local port; the process and its URL."""
    port = free_port()
    env = pipeline.child_env()
    env.update(
        PROVISIONER_NAMESPACE=namespace,
        PROVISIONER_WEBHOOK_SECRET=secret,
        PROVISIONER_WEBHOOK_HOST="127.0.0.1",
        PROVISIONER_WEBHOOK_PORT=str(port),
        PROVISIONER_WEBHOOK_SCALE_DOWN_DELAY=str(SCALE_DOWN_DELAY_S),
        PROVISIONER_WEBHOOK_SYNC_INTERVAL="0.2",
    )
    webhook = ServerProcess(
        "webhook",
        [sys.executable, "-m", "provisioner", "webhook"],
        pipeline.state_dir / "logs" / "webhook.log",
        env=env,
    )
    webhook.start()
    webhook.wait_ready(
        lambda: "webhook receiver listening on" in log_tail(webhook.log_path, 50), timeout=60
    )
    return webhook, f"http://127.0.0.1:{port}/"


def run_job_burst(
    pipeline: LocalPipeline,
    namespace: str,
    jobs: int,
    github_latency_ms: float,
    timeout: float,
    grace: float,
    status: Callable[[str], None] = lambda message: None,
) -> JobBurstResult:
    assert pipeline.api is not None
    name = f"burst-n{jobs}"
    secret = secrets.token_hex(16)
    status("starting provisioner webhook")
    webhook, webhook_url = start_webhook(pipeline, namespace, secret)
    try:
        with JobsAdmin(pipeline.ghsim_url) as jobs_admin, SimulatorAdmin(pipeline.ghsim_url) as sim:
            jobs_admin.configure_webhooks(url=webhook_url, secret=secret, enabled=True)
            pipeline.apply_scale_set(namespace, name, replicas=0, max_runners=jobs)
            completed_before = jobs_admin.jobs()["counts"]["completed"]
            with FleetPlayer(pipeline.api, sim, namespace, name) as player:
                status(f"enqueueing {jobs} jobs")
                started = time.monotonic()
                jobs_admin.enqueue(REPOSITORY, JOB_LABELS, count=jobs, duration_s=JOB_DURATION_S)
                marks: dict[str, float] = {}
                deadline = started + timeout
                while time.monotonic() < deadline and "done" not in marks:
                    counts = jobs_admin.jobs()["counts"]
                    done = counts["completed"] - completed_before
                    now = time.monotonic()
                    if "assigned" not in marks and counts["queued"] == 0:
                        marks["assigned"] = now
                    if done >= jobs:
                        marks["done"] = now
                    status(f"{len(player.connected)} runners online, {done}/{jobs} jobs done")
                    time.sleep(PLAY_INTERVAL_S)
                ready = player.nth_connected(jobs)
                runners_connected = len(player.connected)
                back_to_min, leaks = _wait_for_min(pipeline, sim, namespace, name, grace, status)
    finally:
        webhook.stop(timeout=15)

    def since(moment: float | None) -> float | None:
        return None if moment is None else moment - started

    return JobBurstResult(
        jobs=jobs,
        github_latency_ms=github_latency_ms,
        runners_ready_s=since(ready),
        jobs_assigned_s=since(marks.get("assigned")),
        jobs_completed_s=since(marks.get("done")),
        back_to_min_s=since(back_to_min),
        runners_connected=runners_connected,
        leaks=leaks,
    )


def _wait_for_min(
    pipeline: LocalPipeline,
    sim: SimulatorAdmin,
    namespace: str,
    name: str,
    grace: float,
    status: Callable[[str], None],
) -> tuple[float | None, Leaks]:
    """When the fleet reached 0 runners, and what is left once nothing has been removed for
    ``grace`` seconds: registrations, Secrets and live Pods of the scale set."""
    assert pipeline.api is not None
    status("waiting for spec.replicas to return to 0")
    custom = k8s.CustomObjectsApi(pipeline.api)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        scale_set = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        if not scale_set["spec"].get("replicas"):
            break
        time.sleep(0.5)
    status("waiting for the fleet to return to 0")
    left = count_fleet(pipeline.api, sim, namespace, name)
    deadline = time.monotonic() + grace
    while left.pods + left.secrets + left.registrations and time.monotonic() < deadline:
        time.sleep(0.5)
        now = count_fleet(pipeline.api, sim, namespace, name)
        if (
            now.pods + now.secrets + now.registrations
            < left.pods + left.secrets + left.registrations
        ):
            deadline = time.monotonic() + grace
        left = now
    reached = time.monotonic() if not (left.pods + left.secrets + left.registrations) else None
    return reached, Leaks(registrations=left.registrations, secrets=left.secrets, pods=left.pods)
