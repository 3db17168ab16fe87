"""A redis-server process on a free loopback port, restartable on the same port and data."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from provisioner.devenv.procs import ServerProcess, free_port


class RedisUnavailable(RuntimeError):
    """No redis-server binary; the message says how to install one."""


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RedisUnavailable(
            "redis-server is not on PATH: install it (Debian/Ubuntu: `apt-get install "
            "redis-server`, macOS: `brew install redis`), or run ./scripts/bootstrap"
        )
    return found


class LocalRedis:
    def __init__(self, state_dir: Path, port: int | None = None):
        self.state_dir = state_dir
        self.port = port or free_port()
        self.server: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        data = self.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.server = ServerProcess(
            "redis-server",
            [
                redis_server_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(data),
                # Append-only file: a restarted server keeps the queue and the ledger, as a
                # production Redis with persistence would.
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            self.state_dir / "logs" / "redis.log",
        )
        self.server.start()
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        self.server.wait_ready(client.ping, timeout)
        client.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server else None
