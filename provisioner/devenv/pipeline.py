"""The whole product on one machine: kube-apiserver + etcd, redis-server, the GitHub simulator,
the reconciler and worker processes, started the way users start them. The demo and the
benchmark run on it."""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from provisioner.config import Settings
from provisioner.devenv.binaries import ensure_kube_binaries
from provisioner.devenv.controlplane import LocalControlPlane
from provisioner.devenv.procs import ServerProcess, free_port, log_tail
from provisioner.devenv.redis_server import LocalRedis
from provisioner.ghsim.admin import SimulatorAdmin
from provisioner.kube.client import api_client
from provisioner.kube.crd import GROUP, PLURAL, VERSION, install_crd
from provisioner.kube.runner_objects import SCALE_SET_LABEL

SIM_TOKEN = "ghsim-token"
LIVE_PHASES = ("Pending", "Running")
RUNNER_IMAGE = "ghcr.io/actions/actions-runner:latest"


@dataclass(frozen=True)
class FleetCount:
    """What exists for one scale set, counted at the source of truth of each part."""

    pods: int
    secrets: int
    registrations: int

    @property
    def complete_runners(self) -> int:
        return min(self.pods, self.secrets, self.registrations)


# What the provisioner may send when the simulator sets no per-minute limit.
UNLIMITED_REGISTRATIONS_PER_MINUTE = 100_000
# Registrations per scope in 5 minutes when the simulator models no cap.
UNLIMITED_SCOPE_REGISTRATIONS = 1_000_000


def simulated_registrations_per_minute(ghsim_url: str) -> int:
    """generate-jitconfig calls a minute the simulator at ``ghsim_url`` allows a credential:
    its own jitconfig limit, or its points a minute at 5 a POST; unlimited when neither."""
    config = httpx.get(f"{ghsim_url}/_sim/config", timeout=10).json()
    limits = [
        int(config.get("secondary_jitconfig_per_minute") or 0),
        int(config.get("secondary_points_per_minute") or 0) // 5,
    ]
    return min([n for n in limits if n > 0], default=UNLIMITED_REGISTRATIONS_PER_MINUTE)


def simulated_scope_registrations(ghsim_url: str) -> int:
    """Registrations per scope in 5 minutes that keep within the simulator's cap at
    ``ghsim_url``."""
    config = httpx.get(f"{ghsim_url}/_sim/config", timeout=10).json()
    return scope_registrations_within(
        int(config.get("registrations_per_window") or 0),
        float(config.get("registration_window_s") or 0),
    )


def scope_registrations_within(cap: int, window_s: float) -> int:
    """Registrations per 5 minutes that never pass ``cap`` per ``window_s``: the cap itself
    over a window of 5 minutes or less, a share of it over a longer one; unlimited for no
    cap."""
    if cap <= 0 or window_s <= 0:
        return UNLIMITED_SCOPE_REGISTRATIONS
    return max(1, int(cap * min(1.0, 300.0 / window_s)))


def scale_set_manifest(
    name: str, replicas: int, max_runners: int | None, labels: list[str] | None = None
) -> dict:
    spec: dict = {
        "githubConfigUrl": "https://github.com/octo-org/octo-repo",
        "githubConfigSecret": f"{name}-github",
        "labels": labels or ["self-hosted", "linux", "x64"],
        "minRunners": 0,
        "replicas": replicas,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "runner",
                        "image": RUNNER_IMAGE,
                        "command": ["/home/runner/run.sh"],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    }
                ]
            }
        },
    }
    if max_runners is not None:
        spec["maxRunners"] = max_runners
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RunnerScaleSet",
        "metadata": {"name": name},
        "spec": spec,
    }


def count_fleet(api: k8s.ApiClient, admin: SimulatorAdmin, namespace: str, name: str) -> FleetCount:
    """Pods not finished, Secrets and simulator registrations of scale set ``name``."""
    core = k8s.CoreV1Api(api)
    selector = f"{SCALE_SET_LABEL}={name}"

    def items(listing: Any) -> list[dict[str, Any]]:
        # Read as JSON: turning a fleet of thousands into client models took seconds a count.
        return list(json.loads(listing.data).get("items") or [])

    pods = items(
        core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
    )
    live = [p for p in pods if (p.get("status") or {}).get("phase") in (None, *LIVE_PHASES)]
    secrets = items(
        core.list_namespaced_secret(namespace, label_selector=selector, _preload_content=False)
    )
    prefix = name + "-"
    return FleetCount(
        pods=len(live),
        secrets=len(secrets),
        registrations=sum(1 for r in admin.registrations() if r["name"].startswith(prefix)),
    )


@dataclass
class LocalPipeline:
    state_dir: Path
    settings: Settings
    workers: int = 2
    worker_threads: int | None = None
    ghsim_args: list[str] = field(default_factory=list)
    log: Callable[[str], object] = print

    def __post_init__(self) -> None:
        self.control_plane: LocalControlPlane | None = None
        self.redis: LocalRedis | None = None
        self.ghsim: ServerProcess | None = None
        self.ghsim_url = ""
        self.reconciler: ServerProcess | None = None
        self.worker_processes: list[ServerProcess] = []
        self.api: k8s.ApiClient | None = None

    # Start and stop.

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        binaries = ensure_kube_binaries(log=self.log)
        self.control_plane = LocalControlPlane(self.state_dir / "control-plane", binaries)
        self.control_plane.start()
        self.api = api_client(str(self.control_plane.kubeconfig))
        install_crd(self.api)
        self.redis = LocalRedis(self.state_dir / "redis")
        self.redis.start()
        self.start_ghsim()
        self.start_reconciler()
        if self.settings.parallel_creation:
            for _ in range(self.workers):
                self.start_worker()

    def stop(self) -> None:
        for process in [*self.worker_processes, self.reconciler, self.ghsim]:
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop(timeout=15)
        if self.redis is not None:
            self.redis.stop()
        if self.api is not None:
            self.api.close()
        if self.control_plane is not None:
            self.control_plane.stop()

    def __enter__(self) -> LocalPipeline:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def child_env(self) -> dict[str, str]:
        assert self.control_plane is not None and self.redis is not None
        env = self.settings.to_env()
        env.update(
            PROVISIONER_KUBECONFIG=str(self.control_plane.kubeconfig),
            PROVISIONER_REDIS_URL=self.redis.url,
            PROVISIONER_GITHUB_API_URL=self.ghsim_url,
            PROVISIONER_METRICS_PORT=str(free_port()),
        )
        # The provisioner paces generate-jitconfig and registrations per scope as GitHub.com
        # limits them (180 a minute, 1,500 per 5 minutes); against the simulator it paces as
        # the simulator limits them, unless told otherwise.
        if "github_registrations_per_minute" not in self.settings.model_fields_set:
            env["PROVISIONER_GITHUB_REGISTRATIONS_PER_MINUTE"] = str(
                simulated_registrations_per_minute(self.ghsim_url)
            )
        if "github_scope_registrations" not in self.settings.model_fields_set:
            env["PROVISIONER_GITHUB_SCOPE_REGISTRATIONS"] = str(
                simulated_scope_registrations(self.ghsim_url)
            )
        return env

    def start_ghsim(self) -> None:
        port = free_port()
        self.ghsim_url = f"http://127.0.0.1:{port}"
        self.ghsim = ServerProcess(
            "ghsim",
            [sys.executable, "-m", "provisioner", "ghsim", "--port", str(port), *self.ghsim_args],
            self.state_dir / "logs" / "ghsim.log",
        )
        self.ghsim.start()
        self.ghsim.wait_ready(
            lambda: httpx.get(f"{self.ghsim_url}/_sim/counters", timeout=1).status_code == 200,
            timeout=30,
        )

    def start_reconciler(self) -> ServerProcess:
        index = 0 if self.reconciler is None else int(time.time())
        self.reconciler = ServerProcess(
            "reconciler",
            [sys.executable, "-m", "provisioner", "reconciler"],
            self.state_dir / "logs" / f"reconciler-{index}.log",
            env=self.child_env(),
        )
        self.reconciler.start()
        log_path = self.reconciler.log_path
        self.reconciler.wait_ready(
            lambda: "reconciler started" in log_tail(log_path, 50), timeout=60
        )
        return self.reconciler

    def start_worker(self) -> ServerProcess:
        index = len(self.worker_processes)
        argv = [sys.executable, "-m", "provisioner", "worker", f"--hostname=w{index}@%h"]
        if self.worker_threads:
            argv.append(f"--threads={self.worker_threads}")
        worker = ServerProcess(
            f"worker-{index}",
            argv,
            self.state_dir / "logs" / f"worker-{index}.log",
            env=self.child_env(),
        )
        worker.start()
        worker.wait_ready(lambda: " ready." in log_tail(worker.log_path, 200), timeout=60)
        self.worker_processes.append(worker)
        return worker

    def process_ids(self) -> dict[str, int]:
        pids = {}
        if self.reconciler is not None and self.reconciler.pid:
            pids["reconciler"] = self.reconciler.pid
        for index, worker in enumerate(self.worker_processes):
            if worker.pid:
                pids[f"worker-{index}"] = worker.pid
        return pids

    # Scale sets.

    def apply_scale_set(
        self, namespace: str, name: str, replicas: int = 0, max_runners: int | None = None
    ) -> None:
        assert self.api is not None
        core = k8s.CoreV1Api(self.api)
        with contextlib.suppress(ApiException):
            core.create_namespace(k8s.V1Namespace(metadata={"name": namespace}))
        secret = k8s.V1Secret(
            metadata={"name": f"{name}-github"},
            data={"github_token": base64.b64encode(SIM_TOKEN.encode()).decode()},
        )
        with contextlib.suppress(ApiException):
            core.create_namespaced_secret(namespace, secret)
        k8s.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, scale_set_manifest(name, replicas, max_runners)
        )

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        assert self.api is not None
        k8s.CustomObjectsApi(self.api).patch_namespaced_custom_object_scale(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"replicas": replicas}}
        )

    def status(self, namespace: str, name: str) -> dict:
        assert self.api is not None
        obj = k8s.CustomObjectsApi(self.api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return cast(dict, obj).get("status") or {}

    def count(self, namespace: str, name: str) -> FleetCount:
        assert self.api is not None
        with SimulatorAdmin(self.ghsim_url) as admin:
            return count_fleet(self.api, admin, namespace, name)

    def github_counters(self) -> dict:
        with SimulatorAdmin(self.ghsim_url) as admin:
            return admin.counters()
