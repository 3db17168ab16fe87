"""An autoscaler in this process against the real servers: kube-apiserver, redis-server and
the GitHub simulator, which sends its workflow_job webhooks to the receiver."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from kubernetes import client as k8s

from provisioner.autoscale.jobs_api import JobsClient
from provisioner.autoscale.receiver import WebhookReceiver
from provisioner.autoscale.runner import AutoscalerLoops
from provisioner.autoscale.service import Autoscaler
from provisioner.autoscale.store import DemandStore
from provisioner.autoscale.targets import ScaleTargets
from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.devenv.procs import ServerProcess, free_port, log_tail
from provisioner.ghsim.jobs import JobsAdmin
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from tests.fixtures.ghsim import Ghsim

WEBHOOK_SECRET = b"autoscale-test-secret"
REPOSITORY = "octo-org/octo-repo"  # the repository of scale_set_manifest's githubConfigUrl
LABELS = ["self-hosted", "linux", "x64", "autoscale"]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class AutoscaleEnv:
    api: k8s.ApiClient
    namespace: str
    redis: redis.Redis
    ghsim: Ghsim
    jobs: JobsAdmin
    store: DemandStore
    targets: ScaleTargets
    autoscaler: Autoscaler
    receiver: WebhookReceiver

    def create_scale_set(
        self,
        name: str,
        min_runners: int,
        max_runners: int,
        labels: list[str] = LABELS,
        github_config_url: str | None = None,
    ) -> str:
        core = k8s.CoreV1Api(self.api)
        core.create_namespaced_secret(
            self.namespace,
            k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(name=f"{name}-github"),
                string_data={"github_token": self.ghsim.token},
            ),
        )
        manifest = scale_set_manifest(name, min_runners, max_runners, labels)
        manifest["spec"]["minRunners"] = min_runners
        if github_config_url is not None:
            manifest["spec"]["githubConfigUrl"] = github_config_url
        k8s.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, manifest
        )
        return f"{self.namespace}/{name}"

    def replicas(self, name: str) -> int:
        obj = k8s.CustomObjectsApi(self.api).get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return int(obj["spec"].get("replicas") or 0)

    def start_runners(self, count: int, labels: list[str] = LABELS) -> None:
        """Register ``count`` JIT runners in the simulator and bring them online, as runner
        pods would; the simulator then hands them queued jobs."""
        with self.ghsim.http() as http:
            for _ in range(count):
                name = f"runner-{time.monotonic_ns()}"
                answer = http.post(
                    f"/repos/{REPOSITORY}/actions/runners/generate-jitconfig",
                    json={"name": name, "runner_group_id": 1, "labels": labels},
                )
                assert answer.status_code == 201, answer.text
                self.ghsim.admin.set_runner_state(answer.json()["runner"]["id"], "online")


@pytest.fixture
def autoscale_env(
    kube_api: k8s.ApiClient, namespace: str, redis_url: str, ghsim: Ghsim
) -> Iterator[AutoscaleEnv]:
    connection = redis.Redis.from_url(redis_url)
    store = DemandStore(connection)
    targets = ScaleTargets(kube_api, namespace, max_age_s=0.5)
    jobs_client = JobsClient(ghsim.url)
    autoscaler = Autoscaler(store, targets, scale_down_delay_s=0.5, jobs_client=jobs_client)
    with (
        WebhookReceiver(WEBHOOK_SECRET, autoscaler.handle) as receiver,
        JobsAdmin(ghsim.url) as jobs,
    ):
        jobs.configure_webhooks(url=receiver.url, secret=WEBHOOK_SECRET.decode(), enabled=True)
        yield AutoscaleEnv(
            kube_api, namespace, connection, ghsim, jobs, store, targets, autoscaler, receiver
        )
    jobs_client.close()
    connection.close()


@pytest.fixture
def loops(autoscale_env: AutoscaleEnv) -> Iterator[Callable[..., AutoscalerLoops]]:
    """Start the periodic sync (and polling) for a test; stopped at its end."""
    started: list[AutoscalerLoops] = []

    def start(sync_interval_s: float = 0.2, poll_interval_s: float = 0.0) -> AutoscalerLoops:
        running = AutoscalerLoops(autoscale_env.autoscaler, sync_interval_s, poll_interval_s)
        started.append(running.start())
        return running

    yield start
    for running in started:
        running.stop()


@dataclass
class WebhookCommand:
    """``provisioner webhook`` running as a process, as users run it."""

    process: ServerProcess
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"


@pytest.fixture
def webhook_command(
    autoscale_env: AutoscaleEnv, kubeconfig: str, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., WebhookCommand]]:
    """Start ``provisioner webhook`` against the test's servers; stopped at the test's end."""
    started: list[ServerProcess] = []

    def start(*flags: str) -> WebhookCommand:
        secret_file = tmp_path / "webhook-secret"
        secret_file.write_bytes(WEBHOOK_SECRET + b"\n")
        port = free_port()
        log_path = tmp_path / f"webhook-{len(started)}.log"
        process = ServerProcess(
            "webhook",
            [
                sys.executable,
                "-m",
                "provisioner",
                "webhook",
                f"--port={port}",
                "--host=127.0.0.1",
                f"--webhook-secret-file={secret_file}",
                "--poll-interval=0",
                *flags,
            ],
            log_path,
            env={
                "PROVISIONER_KUBECONFIG": kubeconfig,
                "PROVISIONER_REDIS_URL": redis_url,
                "PROVISIONER_NAMESPACE": autoscale_env.namespace,
                "PROVISIONER_GITHUB_API_URL": autoscale_env.ghsim.url,
                "PROVISIONER_METRICS_PORT": "0",
            },
        )
        started.append(process)
        process.start()
        process.wait_ready(lambda: "listening on" in log_tail(log_path, 50), 30)
        return WebhookCommand(process, port, log_path)

    yield start
    for process in started:
        process.stop()
