"""The operations endpoint of every long-running process: /metrics, /livez and /readyz.

Liveness must tell a stuck process from a busy one. A busy process still runs its main loop,
which beats a ``Heartbeat``; a stuck one (deadlock, hung call without timeout) stops beating,
and /livez fails once the silence is longer than that heartbeat allows, however much work the
process claims to have. Readiness is separate: it reports whether the process can do useful
work now (Redis and the API server reachable), so Kubernetes stops routing to it or counting
it available without restarting it.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from provisioner.config import SettingsError

log = logging.getLogger(__name__)

# A readiness check returns something falsy or raises when the dependency is not usable.
ReadinessCheck = Callable[[], object]


class MetricsPortInUse(SettingsError):
    """The configured --metrics-port is taken by another process."""


class Heartbeat:
    """Beaten by a loop that must keep turning; stale after ``max_silence`` seconds."""

    def __init__(
        self, name: str, max_silence: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_silence <= 0:
            raise ValueError(f"heartbeat {name!r}: max_silence must be > 0, got {max_silence}")
        self.name = name
        self.max_silence = max_silence
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def silence(self) -> float:
        """Seconds since the last beat."""
        return self._clock() - self._last

    def is_alive(self) -> bool:
        return self.silence() <= self.max_silence


def liveness_problems(heartbeats: Sequence[Heartbeat]) -> list[str]:
    return [
        f"{hb.name}: no heartbeat for {hb.silence():.1f}s (allowed {hb.max_silence:g}s)"
        for hb in heartbeats
        if not hb.is_alive()
    ]


def readiness_problems(checks: Mapping[str, ReadinessCheck]) -> list[str]:
    problems = []
    for name, check in checks.items():
        try:
            ok = check()
        except Exception as exc:
            # Only the exception's type: messages of client errors may carry URLs or tokens.
            problems.append(f"{name}: {type(exc).__name__}")
            continue
        if not ok:
            problems.append(f"{name}: not ready")
    return problems


class OpsServer:
    """Serves /metrics, /livez and /readyz from a daemon thread; port 0 turns it off."""

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry = REGISTRY,
        heartbeats: Sequence[Heartbeat] = (),
        readiness: Mapping[str, ReadinessCheck] | None = None,
        host: str = "0.0.0.0",
    ) -> None:
        self.requested_port = port
        self.registry = registry
        self.heartbeats = list(heartbeats)
        self.readiness = dict(readiness or {})
        self.host = host
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.requested_port != 0

    @property
    def port(self) -> int | None:
        """The port being served, or None when disabled or not started."""
        return self._server.server_address[1] if self._server else None

    def add_heartbeat(self, heartbeat: Heartbeat) -> Heartbeat:
        self.heartbeats.append(heartbeat)
        return heartbeat

    def start(self) -> OpsServer:
        if not self.enabled or self._server is not None:
            return self
        try:
            server = ThreadingHTTPServer((self.host, self.requested_port), _handler_for(self))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise MetricsPortInUse(
                    f"--metrics-port {self.requested_port} (PROVISIONER_METRICS_PORT) is "
                    "already in use: give each process its own port, or 0 to turn the "
                    "metrics and probe endpoint off"
                ) from None
            raise
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="ops-server", daemon=True)
        self._thread.start()
        log.info("serving /metrics, /livez and /readyz on port %d", self.port)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> OpsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(ops: OpsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(ops.registry), CONTENT_TYPE_LATEST)
            elif path == "/livez":
                self._report(liveness_problems(ops.heartbeats))
            elif path == "/readyz":
                # A stuck process is not ready either, whatever its dependencies say.
                self._report(liveness_problems(ops.heartbeats) + readiness_problems(ops.readiness))
            else:
                self._send(404, b"not found: try /metrics, /livez or /readyz\n")

        def _report(self, problems: list[str]) -> None:
            if problems:
                self._send(503, ("\n".join(problems) + "\n").encode())
            else:
                self._send(200, b"ok\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Probes hit this every few seconds; keep them out of the log.
            return

    return Handler
