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
    assert [r["ratio"] for r in data["ratios"]] == ["sequential/parallel"]
    assert data["ratios"][0]["value"] > 0
    assert "sequential" in finished.stdout and "time to N runners" in finished.stdout
