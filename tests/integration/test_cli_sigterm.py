"""`provisioner bench` and `provisioner demo` start servers; killed with SIGTERM they stop
them, as they do on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _servers(process: psutil.Process) -> list[psutil.Process]:
    return process.children(recursive=True)


def _has_reconciler(process: psutil.Process) -> bool:
    return any(child.cmdline()[-2:] == ["provisioner", "reconciler"] for child in _servers(process))


@pytest.mark.parametrize(
    "command", [["bench", "--runners", "10", "--modes", "limit"], ["demo", "--runners", "10"]]
)
def test_sigterm_stops_every_server_the_command_started(command: list[str], tmp_path: Path):
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioner", *command, "--state-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        parent = psutil.Process(process.pid)
        # The reconciler starts last of the servers: by then etcd, kube-apiserver,
        # redis-server and the simulator are all running.
        wait_until(lambda: _has_reconciler(parent), timeout=120, what="the servers to start")
        servers = _servers(parent)
        assert len(servers) >= 5
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
        _, alive = psutil.wait_procs(servers, timeout=30)
        assert alive == []
    finally:
        if process.poll() is None:
            # The test failed with the command still running: do not leave its servers behind.
            for child in _servers(psutil.Process(process.pid)):
                child.kill()
            process.kill()
