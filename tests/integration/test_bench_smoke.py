"""`provisioner bench` runs end to end the way CI runs it and writes complete JSON. A smoke
test, not a timing test: the figures are checked for shape, not speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_small_bench_writes_complete_json(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "provisioner",
            "bench",
            "--runners",
            "10",
            "--modes",
            "sequential,parallel",
            "--github-latency-ms",
            "50",
            "--grace",
            "30",
            "--json",
            str(out),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    data = json.loads(out.read_text())

    runs = {run["mode"]: run for run in data["runs"]}
    assert runs.keys() == {"sequential", "parallel"}
    for run in runs.values():
        assert run["runners"] == 10
        assert run["created"] == 10
        assert run["seconds"] > 0
        assert run["github_calls"] >= 10
        # A Secret and a Pod per runner at least.
        assert run["kube_writes"] >= 20
        assert run["cpu_seconds"] > 0 and run["peak_rss_bytes"] > 0
        assert run["leaks"] == {"registrations": 0, "secrets": 0, "pods": 0}
    assert [r["ratio"] for r in data["ratios"]] == ["sequential/parallel", "speed-up/concurrency"]
    assert data["ratios"][0]["value"] > 0
    assert "sequential" in finished.stdout and "time to N runners" in finished.stdout


def test_tenants_bench_reports_each_tenant_against_one_alone(tmp_path: Path) -> None:
    out = tmp_path / "tenants.json"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "provisioner",
            "bench",
            "--tenants",
            "2",
            "--runners",
            "10",
            "--github-latency-ms",
            "50",
            "--github-profile",
            "github.com",
            "--grace",
            "30",
            "--json",
            str(out),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["runs"] == []
    [case] = data["tenant_runs"]
    assert (case["tenants"], case["runners"], case["github_profile"]) == (2, 10, "github.com")
    assert case["seconds"] > 0 and case["ratio_to_alone"] > 0 and case["ratio_to_minimum"] > 0

    [alone] = case["alone"]["tenants"]
    together = case["together"]["tenants"]
    assert alone["runners"] == 5 and [t["runners"] for t in together] == [5, 5]
    # Each tenant its own organisation and token; none shares the one alone's.
    tenants = [alone, *together]
    assert len({t["credential"] for t in tenants}) == 3
    assert len({t["organisation"] for t in tenants}) == 3
    for tenant in tenants:
        assert tenant["created"] == 5
        assert tenant["seconds"] > 0
        assert tenant["github_calls"] >= 5
        # A generate-jitconfig per runner at least came out of the token's hourly 5,000.
        assert tenant["budget_limit"] == 5000
        assert tenant["budget_left_at_end"] <= tenant["budget_left_at_n"] <= 4995
        assert tenant["minimum"]["seconds"] > 0
        assert tenant["leaks"] == {"registrations": 0, "secrets": 0, "pods": 0}
    # Time to N is the last tenant's time to its share.
    assert case["seconds"] == max(t["seconds"] for t in together)
    assert case["together"]["secondary_rate_limited"] == 0
    assert "tenants" in finished.stdout and "x alone" in finished.stdout
