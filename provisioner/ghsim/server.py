"""The simulator over HTTP/1.1 with keep-alive: one thread per connection, so a simulated
delay is a sleep in that connection's thread and many clients wait at once."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

from provisioner.ghsim.config import SimulatorConfig
from provisioner.ghsim.core import Simulator

# Idle keep-alive connections are closed after this long, so threads do not pile up.
IDLE_TIMEOUT_S = 60.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    simulator: Simulator

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request_thread(  # type: ignore[override]
        self, request: socket.socket, client_address: Any
    ) -> None:
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)

    def handle_error(  # type: ignore[override]
        self, request: socket.socket, client_address: Any
    ) -> None:
        # A client that gave up (timeout) before its slow answer came is not a server fault.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            for connection in list(self.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ghsim"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    # Headers and body leave in separate writes; with Nagle on, the client's delayed ACK
    # would add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        outcome = self.server.simulator.handle(self.command, self.path, headers, body)
        if outcome.response is None:
            # A dropped connection: no status line, the socket just closes.
            self.close_connection = True
            return
        response = outcome.response
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        if payload:
            self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, format: str, *args: object) -> None:
        # Request lines go nowhere: at benchmark rates they would cost more than the answers.
        return


class GitHubSimulator:
    """The simulator as a server in this process: ``with GitHubSimulator(config) as sim:``."""

    def __init__(
        self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.simulator = Simulator(config or SimulatorConfig())
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running; call start() first")
        # An AF_INET server's bound address: (host as text, port).
        host, port = cast(tuple[str, int], self._server.server_address[:2])
        return f"http://{host}:{port}"

    def start(self) -> GitHubSimulator:
        self._server = _Server(self._address, self.simulator)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            daemon=True,
            name="ghsim",
        )
        self._thread.start()
        return self

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve in this thread until interrupted (the CLI); ``on_ready(url)`` once listening."""
        self._server = _Server(self._address, self.simulator)
        if on_ready is not None:
            on_ready(self.url)
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._close()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close()

    def _close(self) -> None:
        if self._server is None:
            return
        self.simulator.wake_sleepers()
        self._server.server_close()
        self._server.close_connections()
        self._server = None

    def __enter__(self) -> GitHubSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
