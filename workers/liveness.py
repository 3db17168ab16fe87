"""Probes of a worker process: live while no creation is stuck, ready while Redis and the API
server answer. A worker busy with a long batch keeps finishing tasks and stays live; one whose
task hangs past three creation timeouts is not, and Kubernetes restarts it (its tasks are
redelivered, the creations being idempotent)."""

from __future__ import annotations

import threading
import time

from provisioner.config import Settings
from provisioner.health import Heartbeat, OpsServer, ReadinessCheck

_running: dict[int, float] = {}
_lock = threading.Lock()


def task_started() -> None:
    with _lock:
        _running[threading.get_ident()] = time.monotonic()


def task_finished() -> None:
    with _lock:
        _running.pop(threading.get_ident(), None)


def oldest_task_age() -> float:
    with _lock:
        return time.monotonic() - min(_running.values()) if _running else 0.0


def start_ops_server(settings: Settings) -> OpsServer:
    stuck_after = settings.runner_creation_timeout * 3
    heartbeat = Heartbeat("creation tasks", max_silence=stuck_after + 10)

    def beat_while_not_stuck() -> None:
        while True:
            if oldest_task_age() < stuck_after:
                heartbeat.beat()
            time.sleep(2.0)

    threading.Thread(target=beat_while_not_stuck, name="liveness", daemon=True).start()
    return OpsServer(
        settings.metrics_port,
        heartbeats=[heartbeat],
        readiness={"redis": _redis_ping(settings)},
    ).start()


def _redis_ping(settings: Settings) -> ReadinessCheck:
    import redis

    client = redis.Redis.from_url(settings.redis_connection_url(), socket_timeout=2)
    return client.ping
