"""Benchmark results: the ratios between modes, the table, the JSON file and the plot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


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

    @property
    def runners_per_second(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0

    @property
    def github_calls_per_runner(self) -> float:
        return self.github_calls / self.created if self.created else 0.0

    @property
    def kube_writes_per_runner(self) -> float:
        return self.kube_writes / self.created if self.created else 0.0


@dataclass(frozen=True)
class Ratio:
    runners: int
    numerator: str
    denominator: str
    value: float

    @property
    def label(self) -> str:
        return f"{self.numerator}/{self.denominator}"


# The ratios the design asks for: the speed-up over the ARC-like path, and the distance from
# the floor this machine allows.
RATIO_PAIRS = [("sequential", "parallel"), ("parallel", "limit")]


def ratios(runs: list[BenchRun]) -> list[Ratio]:
    by_key = {(run.mode, run.runners): run for run in runs}
    found = []
    for n in sorted({run.runners for run in runs}):
        for numerator, denominator in RATIO_PAIRS:
            top, bottom = by_key.get((numerator, n)), by_key.get((denominator, n))
            if top and bottom and bottom.seconds > 0:
                found.append(Ratio(n, numerator, denominator, top.seconds / bottom.seconds))
    return found


@dataclass
class BenchReport:
    command: str
    machine: str
    runs: list[BenchRun] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "command": self.command,
            "machine": self.machine,
            "runs": [
                {
                    **asdict(run),
                    "runners_per_second": run.runners_per_second,
                    "github_calls_per_runner": run.github_calls_per_runner,
                    "kube_writes_per_runner": run.kube_writes_per_runner,
                }
                for run in self.runs
            ],
            "ratios": [
                {"runners": r.runners, "ratio": r.label, "value": r.value}
                for r in ratios(self.runs)
            ],
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def print_table(self, console: Console) -> None:
        table = Table(title="time to N runners")
        for column in (
            "mode",
            "N",
            "conc.",
            "seconds",
            "runners/s",
            "CPU s",
            "peak RSS MiB",
            "GitHub/runner",
            "kube writes/runner",
            "429s",
            "leaks",
        ):
            table.add_column(column, justify="right" if column != "mode" else "left")
        for run in self.runs:
            table.add_row(
                run.mode,
                str(run.runners),
                str(run.concurrency),
                f"{run.seconds:.2f}",
                f"{run.runners_per_second:.1f}",
                f"{run.cpu_seconds:.1f}",
                f"{run.peak_rss_bytes / 2**20:.0f}",
                f"{run.github_calls_per_runner:.2f}",
                f"{run.kube_writes_per_runner:.2f}",
                str(run.throttled),
                str(run.leaks.total),
            )
        console.print(table)
        found = ratios(self.runs)
        if found:
            ratio_table = Table(title="ratios of time to N runners")
            ratio_table.add_column("N", justify="right")
            labels = sorted(
                {r.label for r in found}, key=[f"{a}/{b}" for a, b in RATIO_PAIRS].index
            )
            for label in labels:
                ratio_table.add_column(label, justify="right")
            for n in sorted({r.runners for r in found}):
                values = {r.label: f"{r.value:.2f}" for r in found if r.runners == n}
                ratio_table.add_row(str(n), *(values.get(label, "-") for label in labels))
            console.print(ratio_table)

    def write_plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
        for mode in dict.fromkeys(run.mode for run in self.runs):
            points = sorted((r.runners, r.seconds) for r in self.runs if r.mode == mode)
            axes.plot(*zip(*points, strict=True), marker="o", label=mode)
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
