"""``provisioner webhook`` as users run it: a process that scales from signed webhooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from provisioner.devenv.procs import ServerProcess, free_port, log_tail
from tests.autoscale.conftest import LABELS, REPOSITORY, WEBHOOK_SECRET, AutoscaleEnv, wait_for


def test_the_command_scales_from_webhooks_and_stops_cleanly(
    autoscale_env: AutoscaleEnv, kubeconfig: str, redis_url: str, tmp_path: Path
) -> None:
    env = autoscale_env
    env.create_scale_set("cli", min_runners=0, max_runners=5)
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(WEBHOOK_SECRET + b"\n")
    port = free_port()
    log_path = tmp_path / "webhook.log"
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
            "--scale-down-delay=0",
        ],
        log_path,
        env={
            "PROVISIONER_KUBECONFIG": kubeconfig,
            "PROVISIONER_REDIS_URL": redis_url,
            "PROVISIONER_NAMESPACE": env.namespace,
            "PROVISIONER_GITHUB_API_URL": env.ghsim.url,
            "PROVISIONER_METRICS_PORT": "0",
        },
    )
    process.start()
    try:
        process.wait_ready(lambda: "listening on" in log_tail(log_path, 50), 30)
        env.jobs.configure_webhooks(url=f"http://127.0.0.1:{port}/webhook")
        env.jobs.enqueue(REPOSITORY, LABELS, count=3, duration_s=0.2)
        wait_for(lambda: env.replicas("cli") == 3, 20, "3 replicas from the command")
        env.start_runners(3)
        wait_for(lambda: env.replicas("cli") == 0, 20, "replicas back to 0")
    finally:
        process.stop()
    assert process.process is not None and process.process.returncode == 0
    assert env.jobs.webhooks()["deliveries"] == {"delivered": 9, "failed": 0, "suppressed": 0}
    assert WEBHOOK_SECRET.decode() not in log_path.read_text()


def test_without_a_secret_the_command_refuses_to_start_and_says_how() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "provisioner", "webhook", "--port=0"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 2
    assert "PROVISIONER_WEBHOOK_SECRET" in result.stderr
    assert "--webhook-secret-file" in result.stderr


@pytest.mark.parametrize(
    "secret",
    [
        "replace-with-the-webhook-secret",
        "change-me",
        "CHANGEME-please-1234",
        "",
        "   ",
        "15-chars-secret",
    ],
    ids=["shipped-placeholder", "change-me", "changeme-inside", "empty", "blank", "short"],
)
@pytest.mark.parametrize("source", ["environment", "file"])
def test_a_placeholder_empty_or_short_secret_is_refused_in_one_line(
    secret: str, source: str, tmp_path: Path
) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    flags = []
    if source == "file":
        (tmp_path / "secret").write_text(secret + "\n")
        flags.append(f"--webhook-secret-file={tmp_path / 'secret'}")
        setting = "--webhook-secret-file"
    else:
        env["PROVISIONER_WEBHOOK_SECRET"] = secret
        setting = "PROVISIONER_WEBHOOK_SECRET"
    result = subprocess.run(
        [sys.executable, "-m", "provisioner", "webhook", "--port=0", *flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert setting in result.stderr
    if secret.strip():
        assert secret not in result.stderr  # a weak secret is still a secret
