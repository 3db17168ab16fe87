"""Benchmark report: ratios between modes, JSON, table and plot."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from provisioner.bench.report import BenchReport, BenchRun, Leaks, queue_overhead_ms, ratios


def run(
    mode: str, n: int, seconds: float, created: int | None = None, concurrency: int = 10
) -> BenchRun:
    return BenchRun(
        mode=mode,
        runners=n,
        concurrency=1 if mode == "sequential" else concurrency,
        github_latency_ms=300,
        seconds=seconds,
        created=n if created is None else created,
        cpu_seconds=1.5,
        peak_rss_bytes=200 * 2**20,
        github_calls=n,
        kube_writes=2 * n,
        throttled=0,
        leaks=Leaks(0, 0, 0),
    )


def test_ratios_pair_modes_at_the_same_n() -> None:
    runs = [
        run("sequential", 100, 33.0),
        run("parallel", 100, 3.3),
        run("limit", 100, 3.0),
        run("parallel", 500, 10.0),
    ]
    found = {(r.runners, r.label): r.value for r in ratios(runs)}
    assert found.keys() == {
        (100, "sequential/parallel"),
        (100, "speed-up/concurrency"),
        (100, "parallel/limit"),
        (100, "CPU/runner parallel/limit"),
    }
    assert found[(100, "sequential/parallel")] == 10.0
    # A speed-up of 10 at concurrency 10 is the ideal one.
    assert found[(100, "speed-up/concurrency")] == 1.0
    assert abs(found[(100, "parallel/limit")] - 1.1) < 1e-9


def test_the_queue_paths_cpu_per_runner_is_compared_with_limits() -> None:
    parallel = BenchRun(**{**run("parallel", 1000, 12.0).__dict__, "cpu_seconds": 15.0})
    limit = BenchRun(**{**run("limit", 1000, 10.0).__dict__, "cpu_seconds": 7.5})

    found = {r.label: r.value for r in ratios([parallel, limit])}

    assert parallel.cpu_ms_per_runner == 15.0
    assert found["CPU/runner parallel/limit"] == 2.0


def test_ratios_at_each_concurrency_share_the_sequential_baseline() -> None:
    runs = [
        run("sequential", 100, 30.0),
        run("parallel", 100, 3.0, concurrency=10),
        run("parallel", 100, 1.0, concurrency=50),
        run("limit", 100, 0.8, concurrency=50),
    ]
    found = {(r.concurrency, r.label): r.value for r in ratios(runs)}
    assert found == {
        (10, "sequential/parallel"): 10.0,
        (10, "speed-up/concurrency"): 1.0,
        (50, "sequential/parallel"): 30.0,
        (50, "speed-up/concurrency"): 0.6,
        (50, "parallel/limit"): 1.25,
        (50, "CPU/runner parallel/limit"): 1.0,
    }


def test_fixed_budget_runs_are_compared_with_parallel_at_the_same_concurrency() -> None:
    runs = [run("fixed", 100, 12.0, concurrency=20), run("parallel", 100, 4.0, concurrency=20)]
    found = {(r.concurrency, r.label): r.value for r in ratios(runs)}
    assert found == {(20, "fixed/parallel"): 3.0}


def test_secondary_limit_runs_get_their_own_table() -> None:
    limited = BenchRun(
        **{
            **run("parallel", 100, 10.0).__dict__,
            "secondary_limit_per_minute": 600,
            "github_requests_per_second": 10.0,
            "github_calls": 100,
            "throttled": 1,
        }
    )
    out = io.StringIO()
    BenchReport("cmd", "m", [limited]).print_table(Console(file=out, width=200))
    text = out.getvalue()
    assert "secondary limit" in text
    assert "100%" in text and "1.00%" in text


def test_json_carries_runs_ratios_and_per_runner_counts(tmp_path: Path) -> None:
    report = BenchReport(
        "provisioner bench --runners 10",
        "2 cores",
        [run("sequential", 10, 4.0), run("parallel", 10, 0.5, created=8)],
    )
    report.write_json(tmp_path / "bench.json")
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["command"] == "provisioner bench --runners 10"
    parallel = data["runs"][1]
    assert parallel["runners_per_second"] == 16.0
    assert parallel["github_calls_per_runner"] == 10 / 8
    assert parallel["cpu_ms_per_runner"] == 1.5 / 8 * 1000
    assert data["ratios"] == [
        {"runners": 10, "concurrency": 10, "ratio": "sequential/parallel", "value": 8.0},
        {"runners": 10, "concurrency": 10, "ratio": "speed-up/concurrency", "value": 0.8},
    ]


def test_table_shows_each_run_and_the_ratio() -> None:
    report = BenchReport("cmd", "m", [run("sequential", 10, 4.0), run("parallel", 10, 0.5)])
    out = io.StringIO()
    report.print_table(Console(file=out, width=200))
    text = out.getvalue()
    assert "sequential" in text and "parallel" in text
    assert "8.00" in text


def test_plot_is_a_png(tmp_path: Path) -> None:
    report = BenchReport(
        "cmd",
        "m",
        [
            run("sequential", 10, 4.0),
            run("sequential", 50, 20.0),
            run("parallel", 10, 0.5),
            run("parallel", 50, 1.0),
        ],
    )
    report.write_plot(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_queue_overhead_per_runner_comes_only_from_runs_at_zero_latency() -> None:
    at_zero = [
        BenchRun(**{**run(mode, n, seconds).__dict__, "github_latency_ms": 0})
        for mode, n, seconds in (("parallel", 100, 1.3), ("limit", 100, 0.9))
    ]
    at_300 = [run("parallel", 500, 16.0), run("limit", 500, 15.0)]
    overhead = queue_overhead_ms(at_zero + at_300)
    assert overhead.keys() == {(100, 10)}
    assert abs(overhead[(100, 10)] - 4.0) < 1e-9

    out = io.StringIO()
    BenchReport("cmd", "m", at_zero).print_table(Console(file=out, width=200))
    assert "queue ms/runner" in out.getvalue() and "4.00" in out.getvalue()
    out = io.StringIO()
    BenchReport("cmd", "m", at_300).print_table(Console(file=out, width=200))
    assert "queue ms/runner" not in out.getvalue()


def test_memory_at_the_peak_is_shown_per_runner_when_measured() -> None:
    measured = BenchRun(
        **{
            **run("parallel", 1000, 12.0).__dict__,
            "redis_start_bytes": 1 * 2**20,
            "redis_peak_bytes": 11 * 2**20,
            "control_plane_peak_rss_bytes": 400 * 2**20,
        }
    )
    out = io.StringIO()
    BenchReport("cmd", "m", [measured]).print_table(Console(file=out, width=250))

    assert measured.redis_bytes_per_runner == 10 * 2**20 / 1000
    assert "memory at the peak" in out.getvalue()
    assert "10.24" in out.getvalue() and "400" in out.getvalue()
