"""CPU seconds and peak RSS of a set of processes (and their children) over a measurement."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Self, cast

import psutil
import redis


@dataclass(frozen=True)
class ResourceUsage:
    cpu_seconds: float
    peak_rss_bytes: int


class PeriodicSampler:
    """Calls ``_sample`` when entered, every ``interval`` seconds in a background thread, and
    when left."""

    def __init__(self, interval: float, name: str):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Self:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


class ResourceSampler(PeriodicSampler):
    """Samples the process trees rooted at ``pids`` in a background thread.

    CPU time is the difference between the end and the start of the measurement, summed over
    every process seen (a child that exited mid-run keeps the CPU it was last seen with).
    Peak RSS is the largest sum of the trees' resident sets at any one sample. With
    ``children=False`` only the processes themselves count (the benchmark's own process, whose
    children are the servers under test).
    """

    def __init__(self, pids: list[int], interval: float = 0.1, children: bool = True):
        super().__init__(interval, "resource-sampler")
        self.roots = [psutil.Process(pid) for pid in pids]
        self.children = children
        self._cpu_start: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._peak_rss = 0

    def _processes(self) -> list[psutil.Process]:
        found = []
        for root in self.roots:
            try:
                found.append(root)
                if self.children:
                    found.extend(root.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return found

    def _sample(self) -> None:
        rss = 0
        for process in self._processes():
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    rss += process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            cpu = times.user + times.system
            self._cpu_start.setdefault(process.pid, cpu)
            self._cpu_last[process.pid] = cpu
        self._peak_rss = max(self._peak_rss, rss)

    @property
    def usage(self) -> ResourceUsage:
        cpu = sum(self._cpu_last[pid] - self._cpu_start[pid] for pid in self._cpu_last)
        return ResourceUsage(cpu_seconds=cpu, peak_rss_bytes=self._peak_rss)


class RedisMemorySampler(PeriodicSampler):
    """Redis's used memory at the start of a measurement and its peak during it, read from
    INFO in a background thread: what the queue, the ledger and the limits hold for a batch
    in flight."""

    def __init__(self, client: redis.Redis, interval: float = 0.2):
        super().__init__(interval, "redis-sampler")
        self.client = client
        self.start_bytes = 0
        self.peak_bytes = 0

    def _sample(self) -> None:
        try:
            info = cast(dict[str, Any], self.client.info("memory"))
        except redis.RedisError:
            return
        used = int(info["used_memory"])
        self.start_bytes = self.start_bytes or used
        self.peak_bytes = max(self.peak_bytes, used)
