"""The webhook endpoint: verify, bound, parse, deduplicate, then hand the event on.

Order matters: the size is checked before the body is read, the signature before the body is
parsed, so an unauthenticated sender can make us neither buffer much nor parse anything. How
much is buffered at once is bounded too: bodies are read only within a byte budget, by a fixed
pool of workers, each connection within a deadline.
"""

from __future__ import annotations

import json
import logging
import mmap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import cast

from provisioner.autoscale import metrics
from provisioner.autoscale.events import InvalidEvent, JobEvent, parse_workflow_job
from provisioner.autoscale.http_server import ByteBudget, PooledHTTPServer
from provisioner.autoscale.service import Handled
from provisioner.autoscale.signature import verify_signature

log = logging.getLogger(__name__)

PATHS = ("/", "/webhook")
# Workers serving connections; each answers in milliseconds, so a burst queues briefly.
WORKERS = 32
# Bytes of bodies held at once: 16 of the largest default bodies, or some thousands of
# GitHub's workflow_job deliveries (a few KiB each).
BODY_BUDGET_BYTES = 16 * 1024 * 1024
# GitHub gives up on a delivery after 10 s; a connection still open after this is cut.
CONNECTION_DEADLINE_S = 15.0
# How long a delivery may wait for room in the body budget before it is told to come back.
BUDGET_WAIT_S = 5.0


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, object]


class ClientGone(Exception):
    """The client hung up (or was cut off at its deadline) before sending the whole body."""

    def __init__(self, received: int, expected: int) -> None:
        super().__init__(f"the client hung up after {received} of {expected} body bytes")


def _reply(status: int, message: str, **extra: object) -> Reply:
    return Reply(status, {"message": message, **extra})


class WebhookReceiver:
    """``with WebhookReceiver(secret, handle) as receiver:`` serves on ``receiver.url``."""

    def __init__(
        self,
        secret: bytes,
        handle: Callable[[JobEvent, str], Handled],
        max_body_bytes: int = 1024 * 1024,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = WORKERS,
        body_budget_bytes: int = BODY_BUDGET_BYTES,
    ) -> None:
        if not secret:
            raise ValueError("the webhook secret must not be empty")
        self.secret = secret
        self.handle = handle
        self.max_body_bytes = max_body_bytes
        self._budget = ByteBudget(body_budget_bytes)
        self._server = PooledHTTPServer(
            (host, port), _handler_for(self), workers, CONNECTION_DEADLINE_S
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        # An AF_INET server's bound address: (host as text, port).
        host, port = cast(tuple[str, int], self._server.server_address[:2])
        return f"http://{host}:{port}/webhook"

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def receive(
        self, headers: dict[str, str], read_body: Callable[[int], memoryview]
    ) -> Reply | None:
        """Answer one POST; ``headers`` have lower-case names, ``read_body(n)`` reads the
        n-byte body or raises ClientGone. None: the client is gone, there is no one to answer."""
        event = headers.get("x-github-event", "")
        length_header = headers.get("content-length")
        if length_header is None:
            return self._rejected(event, "size", _reply(411, "Content-Length is required"))
        try:
            length = int(length_header)
        except ValueError:
            return self._rejected(event, "body", _reply(400, "Content-Length is not a number"))
        # Reads stop at Content-Length and chunked bodies are refused, so checking the declared
        # length bounds what is ever buffered.
        if length < 0 or length > self.max_body_bytes:
            return self._too_large(event)
        with self._budget.reserve(length, BUDGET_WAIT_S) as reserved:
            if not reserved:
                busy = _reply(503, "too many deliveries at once; redeliver it")
                return self._rejected(event, "busy", busy)
            try:
                body = read_body(length)
            except ClientGone as gone:
                log.debug("delivery %s: %s", headers.get("x-github-delivery", "(none)"), gone)
                self._rejected(event, "body", _reply(400, str(gone)))
                return None
            return self._authenticated(event, headers, body)

    def _authenticated(self, event: str, headers: dict[str, str], body: memoryview) -> Reply:
        if not verify_signature(self.secret, body, headers.get("x-hub-signature-256")):
            return self._rejected(
                event, "signature", _reply(401, "X-Hub-Signature-256 is missing or does not match")
            )
        if event == "ping":
            metrics.WEBHOOKS.labels(event=event, outcome="ignored").inc()
            return _reply(200, "pong")
        if event != "workflow_job":
            metrics.WEBHOOKS.labels(event=event or "none", outcome="ignored").inc()
            return _reply(202, f"event {event or '(none)'} ignored; only workflow_job is used")
        delivery = headers.get("x-github-delivery", "").strip()
        if not delivery:
            return self._rejected(event, "body", _reply(400, "X-GitHub-Delivery is missing"))
        try:
            job = parse_workflow_job(json.loads(bytes(body)))
        except InvalidEvent as exc:
            return self._rejected(event, "body", _reply(400, str(exc)))
        except (ValueError, RecursionError):
            not_json = _reply(400, "the body is not valid JSON or is nested too deeply")
            return self._rejected(event, "body", not_json)
        try:
            handled = self.handle(job, delivery)
        except Exception:
            # Redis or the API server failed before the event was recorded: ask for a redelivery.
            log.exception("could not record delivery %s", delivery)
            metrics.WEBHOOKS.labels(event=event, outcome="failed").inc()
            return _reply(503, "the event could not be recorded; redeliver it")
        metrics.WEBHOOKS.labels(event=event, outcome=handled.outcome).inc()
        return _reply(200, handled.outcome, scale_set=handled.scale_set)

    def _too_large(self, event: str) -> Reply:
        message = f"the body is larger than {self.max_body_bytes} bytes"
        return self._rejected(event, "size", _reply(413, message))

    def _rejected(self, event: str, why: str, reply: Reply) -> Reply:
        metrics.WEBHOOKS.labels(event=event or "none", outcome=f"rejected_{why}").inc()
        return reply


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "provisioner-webhook"
        sys_version = ""
        timeout = 10  # per read or write; the server's deadline bounds the whole connection
        # Headers and body leave in two writes; with Nagle on, the sender's delayed ACK would
        # add ~40 ms to every delivery.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] not in PATHS:
                self._send(_reply(404, "POST webhooks to /webhook"))
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self._send(_reply(411, "send the body with a Content-Length"))
                return
            reply = receiver.receive(headers, self._read_body)
            if reply is None:
                self.close_connection = True
            else:
                self._send(reply)

        def do_GET(self) -> None:
            if self.path == "/livez":
                self._send(_reply(200, "ok"))
            else:
                self._send(_reply(404, "POST webhooks to /webhook"))

        def _read_body(self, length: int) -> memoryview:
            # An anonymous mapping per body, filled in place and unmapped as soon as it is
            # dropped: malloc would keep freed megabytes in per-thread arenas (measured: 26 MiB
            # more under 160 clients sending 1 MiB each).
            view = memoryview(mmap.mmap(-1, max(length, 1)))[:length]
            received = 0
            while received < length:
                try:
                    count = self.rfile.readinto(view[received:])
                except OSError:  # reset, or quiet past the read timeout
                    count = 0
                if not count:
                    raise ClientGone(received, length)
                received += count
            return view

        def _send(self, reply: Reply) -> None:
            payload = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            # One delivery per connection, as GitHub sends them: an idle kept-alive connection
            # would hold a worker, and an unread body must not become the next request.
            self.send_header("connection", "close")
            self.close_connection = True
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler
