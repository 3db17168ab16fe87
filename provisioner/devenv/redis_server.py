"""A redis-server process on a free loopback port, restartable on the same port and data."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RedisTLS:
    """Serve TLS only, with this certificate; clients verify it against ``ca_cert``."""

    ca_cert: Path
    cert: Path
    key: Path


class LocalRedis:
    """``password`` makes the server require AUTH (it is not part of ``url``, as in the
    PROVISIONER_REDIS_PASSWORD setting); ``tls`` serves TLS only, on the same port."""

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        password: str | None = None,
        tls: RedisTLS | None = None,
    ):
        self.state_dir = state_dir
        self.port = port or free_port()
        self.password = password
        self.tls = tls
        self.server: ServerProcess | None = None

    @property
    def url(self) -> str:
        if self.tls is not None:
            return (
                f"rediss://127.0.0.1:{self.port}/0"
                f"?ssl_cert_reqs=required&ssl_ca_certs={self.tls.ca_cert}"
            )
        return f"redis://127.0.0.1:{self.port}/0"

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.tls.cert),
            "--tls-key-file",
            str(self.tls.key),
            "--tls-ca-cert-file",
            str(self.tls.ca_cert),
            "--tls-auth-clients",
            "no",
        ]

    def start(self, timeout: float = 20.0) -> None:
        data = self.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.server = ServerProcess(
            "redis-server",
            [
                redis_server_binary(),
                "--bind",
                "127.0.0.1",
                *self._listen_args(),
                *(["--requirepass", self.password] if self.password else []),
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
        client = redis.Redis.from_url(self.url, password=self.password, socket_timeout=1)
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
