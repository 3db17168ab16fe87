"""`provisioner dev up/env/down` as a user runs them: real processes, checked by pid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from kubernetes import client

from provisioner.devenv.binaries import ensure_kube_binaries
from provisioner.devenv.procs import pid_alive
from provisioner.kube.client import api_client
from provisioner.kube.crd import GROUP, PLURAL, VERSION


def dev(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "provisioner", "dev", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_dev_up_serves_the_crd_and_down_leaves_no_process(tmp_path: Path) -> None:
    binaries = ensure_kube_binaries()
    mtimes = {p: p.stat().st_mtime for p in (binaries.kube_apiserver, binaries.etcd)}
    state_dir = tmp_path / "dev"

    started = time.monotonic()
    up = dev("up", "--state-dir", str(state_dir))
    elapsed = time.monotonic() - started
    assert up.returncode == 0, up.stderr
    state = json.loads((state_dir / "state.json").read_text())
    pids = {name: pid for name, (pid, _) in state["processes"].items()}
    try:
        assert set(pids) == {"etcd", "kube-apiserver", "redis-server"}
        assert all(pid_alive(pid) for pid in pids.values())
        # The cached binaries were used as they were: nothing was built.
        assert "building" not in up.stdout + up.stderr
        assert {p: p.stat().st_mtime for p in mtimes} == mtimes
        print(f"dev up took {elapsed:.1f}s with cached binaries")

        env = dev("env", "--state-dir", str(state_dir))
        assert env.returncode == 0
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines()
        )
        assert redis.Redis.from_url(exports["REDIS_URL"]).ping()
        with api_client(exports["KUBECONFIG"]) as api:
            listed = client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, PLURAL)
        assert listed["items"] == []

        second = dev("up", "--state-dir", str(state_dir))
        assert second.returncode == 1
        assert "already running" in second.stderr
    finally:
        down = dev("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert "etcd" in down.stdout and "redis-server" in down.stdout
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    assert dev("env", "--state-dir", str(state_dir)).returncode == 1


def test_dev_down_stops_nothing_it_did_not_start(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state_dir = tmp_path / "dev"
        state_dir.mkdir()
        # A stale state file whose pid now belongs to another program.
        (state_dir / "state.json").write_text(
            json.dumps(
                {
                    "kubeconfig": "k",
                    "redis_url": "redis://127.0.0.1:1/0",
                    "apiserver_url": "https://127.0.0.1:1",
                    "processes": {"etcd": [bystander.pid, "/nonexistent/etcd"]},
                }
            )
        )
        down = dev("down", "--state-dir", str(state_dir))
        assert down.returncode == 0
        assert "nothing was running" in down.stdout
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_dev_env_without_dev_up_says_what_to_run(tmp_path: Path) -> None:
    result = dev("env", "--state-dir", str(tmp_path))
    assert result.returncode == 1
    assert "provisioner dev up" in result.stderr
    assert os.listdir(tmp_path) == []
