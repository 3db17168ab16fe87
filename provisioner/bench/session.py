"""One benchmark session on a LocalPipeline: each run scales a fresh RunnerScaleSet from 0 to
N, measures, and scales it back to 0.

Modes differ only in who creates the runners:
- ``sequential``: the reconciler with ``parallel_creation`` off, one runner after another;
- ``parallel``: the reconciler and the Celery workers, at the run's concurrency;
- ``limit``: this process, a thread pool of the run's size calling the same RunnerCreator with
  no queue, no rate limit and no budget. The reconciler is stopped meanwhile, so its planning
  cannot race the benchmark's own ledger entries; it is started again to scale back to 0.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from kubernetes import client as k8s
from kubernetes import watch

from provisioner.bench.cases import BenchCase
from provisioner.bench.counts import GitHubCalls, KubeRequests
from provisioner.bench.report import BenchRun, Leaks
from provisioner.bench.resources import RedisMemorySampler, ResourceSampler
from provisioner.config import Settings
from provisioner.devenv.pipeline import SCALE_SET_LABEL, FleetCount, LocalPipeline
from provisioner.devenv.procs import log_tail

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
LEADER_TIMEOUT = 60.0
SECONDARY_WINDOW_SECONDS = 61.0


class BenchFailed(RuntimeError):
    """The pipeline could not run a benchmark run; the message says where to look."""


class PodArrivals:
    """When each pod of one scale set first appeared, from a watch started before the scale
    request (list first, then watch from that resourceVersion, so no pod is missed)."""

    def __init__(self, api: k8s.ApiClient, namespace: str, name: str):
        self.core = k8s.CoreV1Api(api)
        self.namespace = namespace
        self.selector = f"{SCALE_SET_LABEL}={name}"
        self.times: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-arrivals", daemon=True)
        self._version = ""

    def start(self) -> PodArrivals:
        listed = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector)
        now = time.monotonic()
        self.times = {pod.metadata.name: now for pod in listed.items}
        self._version = listed.metadata.resource_version
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def count(self) -> int:
        with self._lock:
            return len(self.times)

    def nth(self, n: int) -> float | None:
        """When the n-th pod appeared, or None before it did."""
        with self._lock:
            times = sorted(self.times.values())
        return times[n - 1] if len(times) >= n else None

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=self.selector,
                    resource_version=self._version,
                    timeout_seconds=2,
                ):
                    pod = event["object"]
                    self._version = pod.metadata.resource_version
                    if event["type"] == "ADDED":
                        with self._lock:
                            self.times.setdefault(pod.metadata.name, time.monotonic())
                    if self._stop.is_set():
                        break
            except Exception as exc:  # a dropped watch is resumed; the list is not needed
                log.debug("pod watch interrupted (%s); resuming", exc)
                time.sleep(0.2)


class InProcessCreator:
    """The `limit` mode: RunnerCreator from a thread pool, unlimited, no Celery."""

    def __init__(self, settings: Settings):
        from provisioner.creation.creator import RunnerCreator
        from provisioner.runtime import Runtime

        self.runtime = Runtime(settings, unlimited=True)
        self.creator = RunnerCreator(self.runtime)
        self.settings = settings

    def create(self, key: str, runners: int, concurrency: int) -> int:
        """Create ``runners`` runners of scale set ``key``; the number created."""
        from provisioner.ledger import LedgerEntry
        from provisioner.naming import runner_names

        scale_set = self.runtime.scale_sets.get(key, None)
        batch_id = uuid.uuid4().hex[:12]
        rounds = -(-runners // concurrency)
        deadline = time.time() + rounds * self.settings.runner_creation_timeout + 60
        entries = [
            LedgerEntry(key, name, batch_id, deadline, owner_uid=scale_set.uid)
            for name in runner_names(scale_set.runner_name_prefix, runners, random.Random())
        ]
        # The creator creates only what the ledger wants, as in the other modes.
        self.runtime.ledger.record(entries)
        with ThreadPoolExecutor(concurrency, thread_name_prefix="limit") as pool:
            results = list(
                pool.map(lambda entry: self.creator.create(entry, scale_set.generation), entries)
            )
        return sum(1 for result in results if result.ok)

    def close(self) -> None:
        self.runtime.close()


@dataclass(frozen=True)
class ProcessSetup:
    """What must run for a mode: the reconciler's settings (None: stopped) and workers."""

    reconciler: Settings | None
    workers: Settings | None


class BenchSession:
    def __init__(
        self,
        pipeline: LocalPipeline,
        namespace: str,
        base_settings: Settings,
        workers: int,
        github_latency_ms: float,
        timeout: float,
        grace: float,
        secondary_limit_per_minute: int = 0,
        status: Callable[[str], None] = lambda message: None,
    ):
        self.pipeline = pipeline
        self.namespace = namespace
        self.base_settings = base_settings
        self.workers = workers
        self.github_latency_ms = github_latency_ms
        self.timeout = timeout
        self.grace = grace
        self.secondary_limit_per_minute = secondary_limit_per_minute
        self.status = status
        self._setup: ProcessSetup | None = None
        self._restarts = 0
        self._warm_ups = 0

    # Processes.

    def settings_for(self, mode: str, concurrency: int) -> Settings:
        return Settings(
            **{
                # Only what the user set: the pipeline paces GitHub as the simulator limits it
                # where the user did not say otherwise.
                **self.base_settings.model_dump(exclude_unset=True),
                "parallel_creation": mode != "sequential",
                "adaptive_concurrency": mode != "fixed" and self.base_settings.adaptive_concurrency,
                "runner_creation_concurrency": concurrency,
            }
        )

    def in_process(self, settings: Settings) -> Settings:
        """``settings`` pointed at the pipeline's servers, for creations in this process."""
        assert self.pipeline.control_plane is not None and self.pipeline.redis is not None
        return Settings(
            **{
                **settings.model_dump(exclude_unset=True),
                "kubeconfig": str(self.pipeline.control_plane.kubeconfig),
                "redis_url": self.pipeline.redis.url,
                "github_api_url": self.pipeline.ghsim_url,
            }
        )

    def setup_for(self, mode: str, concurrency: int) -> ProcessSetup:
        settings = self.settings_for(mode, concurrency)
        if mode == "sequential":
            return ProcessSetup(reconciler=settings, workers=None)
        if mode in ("parallel", "fixed"):
            return ProcessSetup(reconciler=settings, workers=settings)
        return ProcessSetup(reconciler=None, workers=None)

    def use(self, setup: ProcessSetup, warm_up: bool = True) -> None:
        """Restart what differs from ``setup``: reconciler and workers read their settings at
        start, as in production. Freshly started processes create one unmeasured batch first,
        so a run measures long-running processes, not their first client setup."""
        current = self._setup or ProcessSetup(None, None)
        restarted = False
        if self._setup is None or current.workers != setup.workers:
            self._stop_workers()
        if self._setup is None or current.reconciler != setup.reconciler:
            self._stop_reconciler()
            if setup.reconciler is not None:
                self.status("starting the reconciler")
                self.pipeline.settings = setup.reconciler
                self._retire_logs("reconciler")
                self.pipeline.start_reconciler()
                self._wait_for_leadership()
                restarted = True
        if setup.workers is not None and not self.pipeline.worker_processes:
            self.status(f"starting {self.workers} workers")
            self.pipeline.settings = setup.workers
            self._retire_logs("worker")
            for _ in range(self.workers):
                self.pipeline.start_worker()
            restarted = True
        self._setup = setup
        if restarted and warm_up and setup.reconciler is not None:
            self._warm_up(setup.reconciler.runner_creation_concurrency)

    def _warm_up(self, runners: int) -> None:
        self._warm_ups += 1
        name = f"warm-up-{self._warm_ups}"
        self.status(f"warming up with {runners} runners")
        self.pipeline.apply_scale_set(self.namespace, name, replicas=0, max_runners=runners)
        self.pipeline.scale(self.namespace, name, runners)
        deadline = time.monotonic() + self.timeout
        while self.count(name).complete_runners < runners:
            if time.monotonic() > deadline:
                raise BenchFailed(
                    f"warm-up scale set {name} did not reach {runners} runners in "
                    f"{self.timeout:.0f}s; see the logs in {self.pipeline.state_dir / 'logs'}"
                )
            time.sleep(0.2)
        self.pipeline.scale(self.namespace, name, 0)
        while self.count(name).pods and time.monotonic() < deadline:
            time.sleep(0.2)

    def _stop_reconciler(self) -> None:
        if self.pipeline.reconciler is not None:
            self.pipeline.reconciler.stop(timeout=15)
            self.pipeline.reconciler = None

    def _stop_workers(self) -> None:
        for worker in self.pipeline.worker_processes:
            worker.stop(timeout=15)
        self.pipeline.worker_processes = []

    def _retire_logs(self, role: str) -> None:
        # A restarted process reuses its log's name; readiness and leadership are read from the
        # log's tail, so the previous process's lines must not be there.
        self._restarts += 1
        for path in (self.pipeline.state_dir / "logs").glob(f"{role}-*.log"):
            if path.stem.removeprefix(f"{role}-").isdigit():
                path.rename(path.with_name(f"{path.stem}.run{self._restarts}.log"))

    def _wait_for_leadership(self) -> None:
        reconciler = self.pipeline.reconciler
        assert reconciler is not None
        deadline = time.monotonic() + LEADER_TIMEOUT
        while time.monotonic() < deadline:
            if "became leader" in log_tail(reconciler.log_path, 200):
                return
            time.sleep(0.1)
        raise BenchFailed(
            f"the reconciler did not take the leader lease in {LEADER_TIMEOUT:.0f}s; "
            f"see {reconciler.log_path}"
        )

    def measured_pids(self, mode: str) -> tuple[list[int], bool]:
        """The processes doing the creation work, and whether their children count."""
        if mode == "limit":
            return [os.getpid()], False
        return list(self.pipeline.process_ids().values()), True

    # Counts at the source.

    def github_calls(self) -> GitHubCalls:
        return GitHubCalls.from_counters(self.pipeline.github_counters())

    def kube_requests(self) -> KubeRequests:
        api = self.pipeline.api
        assert api is not None
        method, url, headers, body, _ = api.param_serialize("GET", "/metrics")
        response = api.call_api(method, url, headers, body)
        response.read()
        return KubeRequests.from_metrics(response.data.decode())

    def count(self, name: str) -> FleetCount:
        return self.pipeline.count(self.namespace, name)

    # One run.

    def run(self, case: BenchCase, on_progress: Callable[[int], None]) -> BenchRun:
        settings = self.settings_for(case.mode, case.concurrency)
        creator = InProcessCreator(self.in_process(settings)) if case.mode == "limit" else None
        try:
            self.use(self.setup_for(case.mode, case.concurrency))
            name = case.scale_set_name
            self.pipeline.apply_scale_set(
                self.namespace, name, replicas=0, max_runners=case.runners
            )
            arrivals = PodArrivals(self.pipeline.api, self.namespace, name).start()
            pids, children = self.measured_pids(case.mode)
            if self.secondary_limit_per_minute:
                # The simulator's secondary limit counts generate-jitconfig calls over a sliding
                # minute: let the warm-up's and the previous run's calls leave it first.
                self.status("waiting 61 s for the secondary limit's window to empty")
                time.sleep(SECONDARY_WINDOW_SECONDS)
            github_before, kube_before = self.github_calls(), self.kube_requests()
            assert self.pipeline.control_plane is not None and self.pipeline.redis is not None
            control_plane = ResourceSampler(
                list(self.pipeline.control_plane.pids.values()), children=False
            )
            redis_memory = RedisMemorySampler(
                redis.Redis.from_url(
                    self.pipeline.redis.url, password=self.pipeline.redis.password, socket_timeout=5
                )
            )
            try:
                with (
                    ResourceSampler(pids, children=children) as sampler,
                    control_plane,
                    redis_memory,
                ):
                    started = time.monotonic()
                    if creator is not None:
                        worker = threading.Thread(
                            target=creator.create,
                            args=(f"{self.namespace}/{name}", case.runners, case.concurrency),
                            daemon=True,
                        )
                        worker.start()
                    else:
                        self.pipeline.scale(self.namespace, name, case.runners)
                    finished = self._wait_for(arrivals, case.runners, started, on_progress)
                    if creator is not None:
                        worker.join(timeout=max(1.0, started + self.timeout - time.monotonic()))
                github_used = self.github_calls() - github_before
                kube_used = self.kube_requests() - kube_before
            finally:
                arrivals.stop()
            seconds = (finished or time.monotonic()) - started
            created = self.count(name).complete_runners
            leaks = self._scale_to_zero(case, name)
            return BenchRun(
                mode=case.mode,
                runners=case.runners,
                concurrency=case.concurrency,
                github_latency_ms=self.github_latency_ms,
                seconds=seconds,
                created=created,
                cpu_seconds=sampler.usage.cpu_seconds,
                peak_rss_bytes=sampler.usage.peak_rss_bytes,
                control_plane_peak_rss_bytes=control_plane.usage.peak_rss_bytes,
                redis_start_bytes=redis_memory.start_bytes,
                redis_peak_bytes=redis_memory.peak_bytes,
                github_calls=github_used.total,
                kube_writes=kube_used.writes,
                throttled=github_used.throttled,
                leaks=leaks,
                github_requests_per_second=settings.github_requests_per_second,
                secondary_limit_per_minute=self.secondary_limit_per_minute,
            )
        finally:
            if creator is not None:
                creator.close()

    def _wait_for(
        self,
        arrivals: PodArrivals,
        runners: int,
        started: float,
        on_progress: Callable[[int], None],
    ) -> float | None:
        while time.monotonic() - started < self.timeout:
            on_progress(min(arrivals.count(), runners))
            finished = arrivals.nth(runners)
            if finished is not None:
                on_progress(runners)
                return finished
            time.sleep(POLL_SECONDS)
        return None

    def _scale_to_zero(self, case: BenchCase, name: str) -> Leaks:
        """Scale back to 0 and count what is left after the grace period."""
        if case.mode == "limit":
            # The reconciler removes runners; it sees the limit run's fleet as its own.
            self.pipeline.scale(self.namespace, name, case.runners)
            settings = self.settings_for("parallel", case.concurrency)
            self.use(ProcessSetup(reconciler=settings, workers=None), warm_up=False)
        self.status(f"scaling {name} back to 0")
        self.pipeline.scale(self.namespace, name, 0)
        # Removal takes a GitHub call per runner, so a large fleet takes a while: what is left
        # counts as leaked once nothing has been removed for the grace period.
        left = self.count(name)
        deadline = time.monotonic() + self.grace
        while left.pods + left.secrets + left.registrations and time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.count(name)
            if now.pods + now.secrets + now.registrations < (
                left.pods + left.secrets + left.registrations
            ):
                deadline = time.monotonic() + self.grace
            left = now
        return Leaks(registrations=left.registrations, secrets=left.secrets, pods=left.pods)
