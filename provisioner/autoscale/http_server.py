"""An HTTP server that holds up under bursts and hostile clients, from the standard library.

``http.server.ThreadingHTTPServer`` listens with a backlog of 5 (a burst of new connections
beyond it is refused), starts a thread per connection without limit and lets a slow client
hold its thread for as long as it trickles bytes. Here: a deep backlog, a fixed pool of
threads, a deadline per connection, and hang-ups logged as one quiet line.
"""

from __future__ import annotations

import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, HTTPServer

log = logging.getLogger(__name__)

# GitHub sends a burst of deliveries at once, each on a new connection; the kernel caps this
# at net.core.somaxconn (4096 by default since Linux 5.4).
LISTEN_BACKLOG = 1024


class PooledHTTPServer(HTTPServer):
    """Serves each connection on one of ``workers`` threads, and cuts any connection still
    open ``deadline_s`` after a worker took it. Connections wait for a free worker in a queue,
    where they cost a socket and nothing of their request has been read."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        workers: int,
        deadline_s: float,
    ) -> None:
        super().__init__(address, handler)
        self.deadline_s = deadline_s
        self._waiting: queue.SimpleQueue[tuple[socket.socket, object] | None] = queue.SimpleQueue()
        self._serving: dict[socket.socket, float] = {}
        self._serving_lock = threading.Lock()
        self._closed = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"http-worker-{index}", daemon=True)
            for index in range(workers)
        ]
        self._threads.append(threading.Thread(target=self._cut_overdue, name="http-deadlines"))
        self._threads[-1].daemon = True
        for thread in self._threads:
            thread.start()

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        self._waiting.put((request, client_address))

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            # The client hung up or went quiet; nothing of ours failed.
            log.debug("%s: connection ended: %s", _address(client_address), error)
        else:
            log.exception("serving %s failed", _address(client_address))

    def server_close(self) -> None:
        super().server_close()
        self._closed.set()
        for _ in self._threads:
            self._waiting.put(None)

    def _work(self) -> None:
        while (item := self._waiting.get()) is not None:
            request, client_address = item
            with self._deadline(request):
                try:
                    self.finish_request(request, client_address)
                except Exception:
                    self.handle_error(request, client_address)
            self.shutdown_request(request)

    @contextmanager
    def _deadline(self, request: socket.socket) -> Iterator[None]:
        with self._serving_lock:
            self._serving[request] = time.monotonic() + self.deadline_s
        try:
            yield
        finally:
            with self._serving_lock:
                del self._serving[request]

    def _cut_overdue(self) -> None:
        """Shut down connections past their deadline: a worker blocked reading one then sees
        its end, so a client trickling bytes cannot hold a worker for longer."""
        while not self._closed.wait(0.5):
            now = time.monotonic()
            with self._serving_lock:
                overdue = [sock for sock, deadline in self._serving.items() if deadline < now]
            for sock in overdue:
                with suppress(OSError):  # already closed by its worker
                    sock.shutdown(socket.SHUT_RDWR)


class ByteBudget:
    """At most ``limit`` bytes reserved at once; one reservation may exceed it when nothing
    else is held, so any single allowed body can still be read."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, size: int, timeout: float) -> Iterator[bool]:
        """Yields whether ``size`` bytes were reserved within ``timeout`` seconds."""
        with self._changed:
            granted = self._changed.wait_for(
                lambda: self._held == 0 or self._held + size <= self.limit, timeout
            )
            if granted:
                self._held += size
        try:
            yield granted
        finally:
            if granted:
                with self._changed:
                    self._held -= size
                    self._changed.notify_all()


def _address(client_address: object) -> str:
    if isinstance(client_address, tuple) and len(client_address) >= 2:
        return f"{client_address[0]}:{client_address[1]}"
    return str(client_address)
