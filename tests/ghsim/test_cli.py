"""`provisioner ghsim` as users start it: every knob a flag, bad values refused at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from provisioner.devenv.procs import ServerProcess, free_port, log_tail
from provisioner.ghsim.config import SimulatorConfig
from tests.fixtures.ghsim import GhsimApp


def _ghsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioner", "ghsim", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--latency-ms", "-1"], "--latency-ms"),
        (["--error-rate", "1.5"], "--error-rate"),
        (["--latency-distribution", "pareto:1:2"], "--latency-distribution"),
        (["--latency-distribution", "uniform:300:100"], "--latency-distribution"),
        (["--error-endpoint", "everything"], "--error-endpoint"),
        (["--rate-limit-status", "418"], "--rate-limit-status"),
        (["--profile", "github"], "--profile"),
        (["--registration-resource", "search"], "--registration-resource"),
    ],
)
def test_a_bad_knob_is_refused_in_one_line_naming_its_flag(args: list[str], flag: str) -> None:
    result = _ghsim(*args, "--port", "0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"provisioner ghsim: error: {flag}:")


def test_help_documents_every_knob() -> None:
    result = _ghsim("--help")
    assert result.returncode == 0
    # argparse wraps lines (and may break a hyphenated word); compare without whitespace.
    text = "".join(result.stdout.split())
    renamed = {
        "pats": "--pat",
        "app_public_key_pem": "--app-public-key",
        "app_installation_ids": "--app-installation-id",
        "runner_group_ids": "--runner-group-id",
    }
    for flag in ("--port", "--host", "/_sim/counters", "/_sim/config"):
        assert flag in text
    for knob, info in SimulatorConfig.model_fields.items():
        assert renamed.get(knob, "--" + knob.replace("_", "-")) in text, knob
        assert info.description and "".join(info.description.split()) in text, knob


def test_the_command_serves_with_the_credentials_and_knobs_it_was_given(
    tmp_path: Path, ghsim_app: GhsimApp
) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(ghsim_app.public_key_pem)
    port = free_port()
    log = tmp_path / "ghsim.log"
    server = ServerProcess(
        "ghsim",
        [
            sys.executable,
            "-m",
            "provisioner",
            "ghsim",
            "--port",
            str(port),
            "--pat",
            "ghp_cli",
            "--app-id",
            str(ghsim_app.app_id),
            "--app-public-key",
            str(key_file),
            "--app-installation-id",
            str(ghsim_app.installation_id),
            "--latency-distribution",
            "uniform:1:2",
            "--profile",
            "github.com",
            "--rate-limit",
            "3",
        ],
        log,
    )
    server.start()
    try:
        server.wait_ready(lambda: "listening on" in log_tail(log), timeout=30)
        url = f"http://127.0.0.1:{port}"
        runners = f"{url}/orgs/acme/actions/runners"
        pat = {"Authorization": "Bearer ghp_cli"}
        answer = httpx.get(runners, headers=pat)
        assert answer.status_code == 200
        assert answer.headers["x-ratelimit-limit"] == "3"
        assert (
            httpx.get(runners, headers={"Authorization": "Bearer ghsim-token"}).status_code == 401
        )
        exchange = httpx.post(
            f"{url}/app/installations/{ghsim_app.installation_id}/access_tokens",
            headers={"Authorization": f"Bearer {ghsim_app.jwt()}"},
        )
        assert exchange.status_code == 201
        config = httpx.get(f"{url}/_sim/config").json()
        assert config["latency_distribution"] == "uniform:1:2"
        # The profile's limits, except the one given as a flag.
        assert (config["secondary_points_per_minute"], config["rate_limit"]) == (900, 3)
        ghes = httpx.get(f"{url}/api/v3/orgs/acme/actions/runners", headers=pat)
        assert (ghes.status_code, ghes.headers["x-ratelimit-used"]) == (200, "2")
    finally:
        server.stop()


def test_an_app_key_that_is_not_a_pem_public_key_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text("not a key")
    result = _ghsim("--app-id", "1", "--app-public-key", str(key_file))
    assert result.returncode == 2
    assert result.stderr.startswith("provisioner ghsim: error: --app-public-key: not a PEM")
    missing = _ghsim("--app-id", "1")
    assert missing.returncode == 2
    assert "--app-public-key" in missing.stderr
