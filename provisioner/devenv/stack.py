"""``provisioner dev up/down/env``: the local servers, recorded in a state directory so that
``down`` stops exactly what ``up`` started."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from provisioner.devenv.binaries import ensure_kube_binaries
from provisioner.devenv.controlplane import LocalControlPlane
from provisioner.devenv.procs import pid_alive, pid_executable, stop_pid
from provisioner.devenv.redis_server import LocalRedis

DEFAULT_STATE_DIR = Path(".provisioner-dev")
STATE_FILE = "state.json"


@dataclass
class DevState:
    kubeconfig: str
    redis_url: str
    apiserver_url: str
    # name -> [pid, executable path]; the path guards against stopping a recycled pid.
    processes: dict[str, list] = field(default_factory=dict)

    def env_lines(self) -> list[str]:
        return [
            f"export KUBECONFIG={self.kubeconfig}",
            f"export REDIS_URL={self.redis_url}",
            f"export PROVISIONER_KUBECONFIG={self.kubeconfig}",
            f"export PROVISIONER_REDIS_URL={self.redis_url}",
        ]


class DevStackError(RuntimeError):
    """The local stack cannot be started or read; the message says why."""


def read_state(state_dir: Path) -> DevState | None:
    path = state_dir / STATE_FILE
    if not path.is_file():
        return None
    return DevState(**json.loads(path.read_text()))


def running_processes(state: DevState) -> dict[str, int]:
    alive = {}
    for name, (pid, executable) in state.processes.items():
        if pid_alive(pid) and pid_executable(pid) == os.path.realpath(executable):
            alive[name] = pid
    return alive


def dev_up(state_dir: Path, log: Callable[[str], object] = print) -> DevState:
    state_dir = state_dir.resolve()
    existing = read_state(state_dir)
    if existing is not None and running_processes(existing):
        raise DevStackError(
            f"a local control plane is already running from {state_dir}; "
            "run `provisioner dev down` first"
        )
    binaries = ensure_kube_binaries(log)
    control_plane = LocalControlPlane(state_dir, binaries)
    redis_server = LocalRedis(state_dir)
    try:
        control_plane.start()
        redis_server.start()
        from provisioner.kube.client import api_client
        from provisioner.kube.crd import install_crd

        with api_client(str(control_plane.kubeconfig)) as api:
            install_crd(api)
    except BaseException:
        redis_server.stop()
        control_plane.stop()
        raise
    servers = [control_plane.etcd, control_plane.apiserver, redis_server.server]
    state = DevState(
        kubeconfig=str(control_plane.kubeconfig),
        redis_url=redis_server.url,
        apiserver_url=control_plane.url,
        processes={s.name: [s.pid, s.argv[0]] for s in servers if s is not None},
    )
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
    return state


def dev_down(state_dir: Path) -> list[str]:
    """Stops what ``dev_up`` recorded and nothing else; returns the names stopped."""
    state_dir = state_dir.resolve()
    state = read_state(state_dir)
    if state is None:
        return []
    alive = running_processes(state)
    # The API server first, so it does not log a burst of etcd connection errors.
    for name in ("kube-apiserver", "redis-server", "etcd"):
        if name in alive:
            stop_pid(alive[name])
    os.remove(state_dir / STATE_FILE)
    return sorted(alive)
