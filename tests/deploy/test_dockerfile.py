"""The Dockerfile keeps its promises, checked without a Docker engine: a slim non-root final
stage without build tools, every file the wheel needs copied into the build (and not excluded
by .dockerignore), and a HEALTHCHECK that really fails on a stuck process."""

from __future__ import annotations

import fnmatch
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from provisioner.health import Heartbeat, OpsServer

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def test_the_final_stage_is_slim_unprivileged_and_without_build_tools() -> None:
    *builders, final = stages()
    assert builders, "the Dockerfile must build in a separate stage"
    args = dict(rest.split("=", 1) for keyword, rest in instructions() if keyword == "ARG")
    base = final[0][1].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", ""))
    assert base.startswith("python:3.11-slim")
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    final_text = " ".join(rest for _, rest in final)
    for tool in ("build-essential", "gcc", "g++", "make ", "-dev "):
        assert tool not in final_text, f"{tool.strip()} in the final stage"
    assert any(k == "COPY" and "--from=builder" in rest for k, rest in final)
    assert ("ENTRYPOINT", '["provisioner"]') in final
    assert any(keyword == "HEALTHCHECK" for keyword, _ in final)


def _ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def test_the_build_copies_everything_the_wheel_needs() -> None:
    copied = set()
    for keyword, rest in stages()[0]:
        if keyword == "COPY":
            *sources, _ = rest.split()
            copied.update(sources)
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not _ignored(source), f"COPY {source}: excluded by .dockerignore"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"], *wheel["packages"]}
    needed.update(wheel.get("force-include", {}))
    assert needed <= copied, f"not copied into the build: {needed - copied}"


def healthcheck_command() -> list[str]:
    (rest,) = [rest for keyword, rest in stages()[-1] if keyword == "HEALTHCHECK"]
    command = shlex.split(rest.split(" CMD ", 1)[1])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def run_healthcheck(port: int) -> int:
    env = {"PROVISIONER_METRICS_PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run(healthcheck_command(), env=env, timeout=20).returncode


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_healthcheck_passes_while_the_loop_beats_and_fails_when_it_is_stuck(
    free_port: int,
) -> None:
    now = [0.0]
    beat = Heartbeat("loop", max_silence=30, clock=lambda: now[0])
    with OpsServer(free_port, CollectorRegistry(), heartbeats=[beat], host="127.0.0.1"):
        assert run_healthcheck(free_port) == 0
        now[0] = 31.0
        assert run_healthcheck(free_port) != 0


def test_the_healthcheck_fails_when_nothing_listens_and_passes_when_turned_off(
    free_port: int,
) -> None:
    assert run_healthcheck(free_port) != 0
    assert run_healthcheck(0) == 0
