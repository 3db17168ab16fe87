"""The operations endpoint, probed with real HTTP requests."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from provisioner.config import SettingsError
from provisioner.health import Heartbeat, MetricsPortInUse, OpsServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_heartbeat_goes_stale_after_its_allowed_silence(clock: FakeClock) -> None:
    beat = Heartbeat("loop", max_silence=10, clock=clock)
    clock.now += 10
    assert beat.is_alive()
    clock.now += 0.5
    assert not beat.is_alive()
    beat.beat()
    assert beat.is_alive()


def test_heartbeat_refuses_a_non_positive_silence() -> None:
    with pytest.raises(ValueError, match="max_silence"):
        Heartbeat("loop", max_silence=0)


def test_metrics_are_served_in_the_prometheus_format() -> None:
    registry = CollectorRegistry()
    Counter("demo_things", "Things.", registry=registry).inc(3)
    with OpsServer(free_port(), registry=registry, host="127.0.0.1") as ops:
        status, body = get(ops.port, "/metrics")
    assert status == 200
    assert "demo_things_total 3.0" in body


def test_livez_fails_when_the_loop_is_stuck_and_recovers_when_it_beats(clock: FakeClock) -> None:
    loop = Heartbeat("reconcile-loop", max_silence=30, clock=clock)
    with OpsServer(free_port(), CollectorRegistry(), heartbeats=[loop], host="127.0.0.1") as ops:
        assert get(ops.port, "/livez") == (200, "ok\n")
        clock.now += 31
        status, body = get(ops.port, "/livez")
        assert status == 503
        assert "reconcile-loop" in body and "31.0s" in body
        # A stuck process is not ready either.
        assert get(ops.port, "/readyz")[0] == 503
        loop.beat()
        assert get(ops.port, "/livez") == (200, "ok\n")


def test_a_busy_process_that_keeps_beating_stays_live(clock: FakeClock) -> None:
    loop = Heartbeat("worker-loop", max_silence=30, clock=clock)
    with OpsServer(free_port(), CollectorRegistry(), heartbeats=[loop], host="127.0.0.1") as ops:
        for _ in range(5):  # a long batch: 100 s of work, beating every 20 s
            clock.now += 20
            loop.beat()
            assert get(ops.port, "/livez")[0] == 200


def test_readyz_reports_failing_checks_without_their_messages() -> None:
    state = {"redis": True, "kube": False}

    def kube() -> bool:
        if not state["kube"]:
            raise ConnectionError("https://user:s3cret@apiserver refused")
        return True

    checks = {"redis": lambda: state["redis"], "kube-apiserver": kube}
    with OpsServer(free_port(), CollectorRegistry(), readiness=checks, host="127.0.0.1") as ops:
        status, body = get(ops.port, "/readyz")
        assert status == 503
        assert "kube-apiserver: ConnectionError" in body
        assert "s3cret" not in body
        assert "redis" not in body
        state["kube"] = True
        assert get(ops.port, "/readyz") == (200, "ok\n")
        state["redis"] = False
        assert get(ops.port, "/readyz") == (503, "redis: not ready\n")
        # Readiness never decides liveness: a Redis outage must not restart the process.
        assert get(ops.port, "/livez")[0] == 200


def test_unknown_paths_are_404() -> None:
    with OpsServer(free_port(), CollectorRegistry(), host="127.0.0.1") as ops:
        assert get(ops.port, "/")[0] == 404


def test_port_zero_turns_the_endpoint_off() -> None:
    ops = OpsServer(0, CollectorRegistry()).start()
    assert not ops.enabled
    assert ops.port is None
    ops.stop()


def test_a_port_in_use_names_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsPortInUse, match=f"--metrics-port {port}") as caught:
            OpsServer(port, CollectorRegistry(), host="127.0.0.1").start()
    assert isinstance(caught.value, SettingsError)


def test_stop_releases_the_port() -> None:
    port = free_port()
    OpsServer(port, CollectorRegistry(), host="127.0.0.1").start().stop()
    with OpsServer(port, CollectorRegistry(), host="127.0.0.1") as again:
        assert get(again.port, "/livez")[0] == 200
