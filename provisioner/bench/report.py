"""Benchmark results: the ratios between modes, the table, the JSON file and the plot."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from provisioner.bench.burst import JobBurstResult
    from provisioner.bench.tenant_report import TenantComparison


@dataclass(frozen=True)
class Leaks:
    registrations: int
    secrets: int
    pods: int

    @property
    def total(self) -> int:
        return self.registrations + self.secrets + self.pods


@dataclass(frozen=True)
class BenchRun:
    mode: str
    runners: int
    concurrency: int
    github_latency_ms: float
    seconds: float
    created: int
    cpu_seconds: float
    peak_rss_bytes: int
    github_calls: int
    kube_writes: int
    throttled: int
    leaks: Leaks
    # The configured global GitHub rate and the simulator's secondary limit on
    # generate-jitconfig (0 = off), for runs that measure throughput under a secondary limit.
    github_requests_per_second: float = 0.0
    secondary_limit_per_minute: int = 0
    # The local control plane's (kube-apiserver and etcd) peak RSS, and Redis's used memory at
    # the start and at the peak of the run (0: not measured).
    control_plane_peak_rss_bytes: int = 0
    redis_start_bytes: int = 0
    redis_peak_bytes: int = 0

    @property
    def label(self) -> str:
        """The line this run belongs to: the mode, and its concurrency where it has one."""
        return self.mode if self.mode == "sequential" else f"{self.mode} c={self.concurrency}"

    @property
    def runners_per_second(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0

    @property
    def github_calls_per_runner(self) -> float:
        return self.github_calls / self.created if self.created else 0.0

    @property
    def kube_writes_per_runner(self) -> float:
        return self.kube_writes / self.created if self.created else 0.0

    @property
    def redis_bytes_per_runner(self) -> float:
        """What Redis held for each runner of the batch at the peak, over what it held before."""
        grown = self.redis_peak_bytes - self.redis_start_bytes
        return grown / self.runners if self.runners and grown > 0 else 0.0

    @property
    def cpu_ms_per_runner(self) -> float:
        return self.cpu_seconds / self.created * 1000 if self.created else 0.0


@dataclass(frozen=True)
class Ratio:
    runners: int
    concurrency: int
    numerator: str
    denominator: str
    value: float

    @property
    def label(self) -> str:
        return f"{self.numerator}/{self.denominator}"


# The ratios the design asks for: the speed-up over the ARC-like path, and the distance from
# the floor this machine allows.
# fixed/parallel above 1: adaptive concurrency (on in parallel) made the same runs faster.
RATIO_PAIRS = [("sequential", "parallel"), ("fixed", "parallel"), ("parallel", "limit")]
# Derived from those: the speed-up as a share of the ideal one (with concurrency c the best
# possible speed-up is c), and what the queue path costs in CPU per runner against `limit`.
SPEED_UP_SHARE = ("speed-up", "concurrency")
CPU_PER_RUNNER = ("CPU/runner parallel", "limit")
RATIO_ORDER = [
    "sequential/parallel",
    "/".join(SPEED_UP_SHARE),
    "fixed/parallel",
    "parallel/limit",
    "/".join(CPU_PER_RUNNER),
]


def ratios(runs: list[BenchRun]) -> list[Ratio]:
    """Time ratios at each N and concurrency, with the speed-up as a share of the ideal and
    the queue path's CPU per runner against `limit`. Sequential creation has no concurrency,
    so its run at N is the numerator for every parallel concurrency at that N."""
    sequential = {run.runners: run for run in runs if run.mode == "sequential"}
    by_key = {(run.mode, run.runners, run.concurrency): run for run in runs}
    found = []
    for n, concurrency in sorted(
        {(run.runners, run.concurrency) for run in runs if run.mode != "sequential"}
    ):
        for numerator, denominator in RATIO_PAIRS:
            top = (
                sequential.get(n)
                if numerator == "sequential"
                else by_key.get((numerator, n, concurrency))
            )
            bottom = by_key.get((denominator, n, concurrency))
            if not (top and bottom and bottom.seconds > 0):
                continue
            value = top.seconds / bottom.seconds
            found.append(Ratio(n, concurrency, numerator, denominator, value))
            if numerator == "sequential":
                found.append(Ratio(n, concurrency, *SPEED_UP_SHARE, value / concurrency))
            if (numerator, denominator) == ("parallel", "limit") and bottom.cpu_ms_per_runner:
                cpu = top.cpu_ms_per_runner / bottom.cpu_ms_per_runner
                found.append(Ratio(n, concurrency, *CPU_PER_RUNNER, cpu))
    return found


def queue_overhead_ms(runs: list[BenchRun]) -> dict[tuple[int, int], float]:
    """Milliseconds per runner that the queue adds, (parallel - limit) / N at each N and
    concurrency: only from runs at 0 ms GitHub latency, where nothing else separates them."""
    by_key = {
        (run.mode, run.runners, run.concurrency): run for run in runs if run.github_latency_ms == 0
    }
    return {
        (n, concurrency): (run.seconds - limit.seconds) / n * 1000
        for (mode, n, concurrency), run in sorted(by_key.items())
        if mode == "parallel" and (limit := by_key.get(("limit", n, concurrency)))
    }


@dataclass
class BenchReport:
    command: str
    machine: str
    runs: list[BenchRun] = field(default_factory=list)
    job_burst: JobBurstResult | None = None
    tenant_runs: list[TenantComparison] = field(default_factory=list)

    def to_json(self) -> dict:
        burst = {} if self.job_burst is None else {"job_burst": asdict(self.job_burst)}
        tenants = (
            {"tenant_runs": [run.to_json() for run in self.tenant_runs]} if self.tenant_runs else {}
        )
        return {
            "command": self.command,
            "machine": self.machine,
            "runs": [
                {
                    **asdict(run),
                    "runners_per_second": run.runners_per_second,
                    "github_calls_per_runner": run.github_calls_per_runner,
                    "kube_writes_per_runner": run.kube_writes_per_runner,
                    "cpu_ms_per_runner": run.cpu_ms_per_runner,
                    "redis_bytes_per_runner": run.redis_bytes_per_runner,
                }
                for run in self.runs
            ],
            "ratios": [
                {
                    "runners": r.runners,
                    "concurrency": r.concurrency,
                    "ratio": r.label,
                    "value": r.value,
                }
                for r in ratios(self.runs)
            ],
            "queue_overhead_ms_per_runner": [
                {"runners": n, "concurrency": concurrency, "value": value}
                for (n, concurrency), value in queue_overhead_ms(self.runs).items()
            ],
            **burst,
            **tenants,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def print_table(self, console: Console) -> None:
        if self.job_burst is not None:
            console.print(self.job_burst.table())
        if self.tenant_runs:
            from provisioner.bench.tenant_report import tenants_table

            console.print(tenants_table(self.tenant_runs))
        if not self.runs:
            return
        table = runs_table(
            "time to N runners",
            "N",
            "conc.",
            "seconds",
            "runners/s",
            "CPU s",
            "CPU ms/runner",
            "peak RSS MiB",
            "GitHub/runner",
            "kube writes/runner",
            "429s",
            "leaks",
        )
        for run in self.runs:
            table.add_row(
                run.mode,
                str(run.runners),
                str(run.concurrency),
                f"{run.seconds:.2f}",
                f"{run.runners_per_second:.1f}",
                f"{run.cpu_seconds:.1f}",
                f"{run.cpu_ms_per_runner:.1f}",
                f"{run.peak_rss_bytes / 2**20:.0f}",
                f"{run.github_calls_per_runner:.2f}",
                f"{run.kube_writes_per_runner:.2f}",
                str(run.throttled),
                str(run.leaks.total),
            )
        console.print(table)
        measured = [run for run in self.runs if run.redis_peak_bytes]
        if measured:
            console.print(memory_table(measured))
        found = ratios(self.runs)
        if found:
            ratio_table = Table(title="ratios: time to N runners, and CPU per runner")
            ratio_table.add_column("N", justify="right")
            ratio_table.add_column("conc.", justify="right")
            labels = sorted({r.label for r in found}, key=RATIO_ORDER.index)
            for label in labels:
                ratio_table.add_column(label, justify="right")
            overhead = queue_overhead_ms(self.runs)
            if overhead:
                ratio_table.add_column("queue ms/runner", justify="right")
            for n, concurrency in sorted({(r.runners, r.concurrency) for r in found}):
                values = {
                    r.label: f"{r.value:.2f}"
                    for r in found
                    if (r.runners, r.concurrency) == (n, concurrency)
                }
                cells = [values.get(label, "-") for label in labels]
                if overhead:
                    value = overhead.get((n, concurrency))
                    cells.append("-" if value is None else f"{value:.2f}")
                ratio_table.add_row(str(n), str(concurrency), *cells)
            console.print(ratio_table)
        limited = [run for run in self.runs if run.secondary_limit_per_minute]
        if limited:
            console.print(secondary_limit_table(limited))

    def write_plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
        for label in dict.fromkeys(run.label for run in self.runs):
            points = sorted((r.runners, r.seconds) for r in self.runs if r.label == label)
            axes.plot(*zip(*points, strict=True), marker="o", label=label)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("runners (N)")
        axes.set_ylabel("seconds until N runners exist")
        latency = {r.github_latency_ms for r in self.runs}
        axes.set_title(
            f"time to N runners (GitHub latency {', '.join(f'{v:g}' for v in sorted(latency))} ms)"
        )
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)


def runs_table(title: str, *columns: str) -> Table:
    """A table of runs: the mode on the left, then ``columns`` of figures."""
    table = Table(title=title)
    table.add_column("mode", justify="left")
    for column in columns:
        table.add_column(column, justify="right")
    return table


# The memory table's columns after the mode, and how each reads a run.
MEMORY_COLUMNS: dict[str, Callable[[BenchRun], str]] = {
    "N": lambda run: str(run.runners),
    "conc.": lambda run: str(run.concurrency),
    "reconciler + workers MiB": lambda run: f"{run.peak_rss_bytes / 2**20:.0f}",
    "Redis MiB": lambda run: f"{run.redis_peak_bytes / 2**20:.1f}",
    "Redis KiB/runner": lambda run: f"{run.redis_bytes_per_runner / 2**10:.2f}",
    "kube-apiserver + etcd MiB": lambda run: f"{run.control_plane_peak_rss_bytes / 2**20:.0f}",
}


def memory_table(runs: list[BenchRun]) -> Table:
    """Memory at the peak of each run: the creation processes, Redis and the control plane."""
    table = runs_table("memory at the peak", *MEMORY_COLUMNS)
    for run in runs:
        table.add_row(run.mode, *(cell(run) for cell in MEMORY_COLUMNS.values()))
    return table


def secondary_limit_table(runs: list[BenchRun]) -> Table:
    """Throughput under the simulator's secondary limit against the configured global rate."""
    table = runs_table(
        "throughput under GitHub's secondary limit on generate-jitconfig",
        "N",
        "limit/min",
        "limit/s",
        "configured rate/s",
        "runners/s",
        "of limit",
        "429s",
        "429s of calls",
    )
    for run in runs:
        limit_per_second = run.secondary_limit_per_minute / 60
        table.add_row(
            run.label,
            str(run.runners),
            str(run.secondary_limit_per_minute),
            f"{limit_per_second:.2f}",
            f"{run.github_requests_per_second:g}",
            f"{run.runners_per_second:.2f}",
            f"{run.runners_per_second / limit_per_second:.0%}",
            str(run.throttled),
            f"{run.throttled / run.github_calls:.2%}" if run.github_calls else "-",
        )
    return table
