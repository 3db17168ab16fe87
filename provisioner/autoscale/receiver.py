"""The webhook endpoint: verify, bound, parse, deduplicate, then hand the event on.

Order matters: the size is checked before the body is read, the signature before the body is
parsed, so an unauthenticated sender can make us neither buffer much nor parse anything.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from provisioner.autoscale import metrics
from provisioner.autoscale.events import InvalidEvent, JobEvent, parse_workflow_job
from provisioner.autoscale.service import Handled
from provisioner.autoscale.signature import verify_signature

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
PATHS = ("/", "/webhook")


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, object]
    close: bool = False  # drop the connection: an unread body must not become the next request


def _reply(status: int, message: str, close: bool = False, **extra: object) -> Reply:
    return Reply(status, {"message": message, **extra}, close)


class WebhookReceiver:
    """``with WebhookReceiver(secret, handle) as receiver:`` serves on ``receiver.url``."""

    def __init__(
        self,
        secret: bytes,
        handle: Callable[[JobEvent, str], Handled],
        max_body_bytes: int = 1024 * 1024,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not secret:
            raise ValueError("the webhook secret must not be empty")
        self.secret = secret
        self.handle = handle
        self.max_body_bytes = max_body_bytes
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
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

    def receive(self, headers: dict[str, str], read: Callable[[int], bytes]) -> Reply:
        """Answer one POST; ``headers`` have lower-case names, ``read(n)`` reads the body."""
        event = headers.get("x-github-event", "")
        length_header = headers.get("content-length")
        if length_header is None:
            return self._rejected(event, "size", _reply(411, "Content-Length is required", True))
        try:
            length = int(length_header)
        except ValueError:
            bad_length = _reply(400, "Content-Length is not a number", True)
            return self._rejected(event, "body", bad_length)
        # Reads stop at Content-Length and chunked bodies are refused, so checking the declared
        # length bounds what is ever buffered.
        if length < 0 or length > self.max_body_bytes:
            return self._too_large(event)
        body = bytearray()
        while len(body) < length:
            chunk = read(min(READ_CHUNK, length - len(body)))
            if not chunk:
                return self._rejected(event, "body", _reply(400, "the body ended early", True))
            body += chunk
        if not verify_signature(self.secret, bytes(body), headers.get("x-hub-signature-256")):
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
            job = parse_workflow_job(json.loads(body))
        except (ValueError, InvalidEvent) as exc:
            reason = str(exc) if isinstance(exc, InvalidEvent) else "the body is not valid JSON"
            return self._rejected(event, "body", _reply(400, reason))
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
        return self._rejected(event, "size", _reply(413, message, True))

    def _rejected(self, event: str, why: str, reply: Reply) -> Reply:
        metrics.WEBHOOKS.labels(event=event or "none", outcome=f"rejected_{why}").inc()
        return reply


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "provisioner-webhook"
        sys_version = ""
        timeout = 30
        # Headers and body leave in two writes; with Nagle on, the sender's delayed ACK would
        # add ~40 ms to every delivery.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] not in PATHS:
                self._send(_reply(404, "POST webhooks to /webhook", True))
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self._send(_reply(411, "send the body with a Content-Length", True))
                return
            self._send(receiver.receive(headers, self.rfile.read))

        def do_GET(self) -> None:
            if self.path == "/livez":
                self._send(_reply(200, "ok"))
            else:
                self._send(_reply(404, "POST webhooks to /webhook"))

        def _send(self, reply: Reply) -> None:
            payload = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            if reply.close:
                self.send_header("connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler
