"""``provisioner webhook`` under GitHub's bursts and under hostile clients, as a real process."""

from __future__ import annotations

import http.client
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil

from provisioner.autoscale.signature import sign
from tests.autoscale.conftest import WEBHOOK_SECRET, AutoscaleEnv, WebhookCommand
from tests.autoscale.test_receiver import job_event

MiB = 1024 * 1024


def deliver(port: int, body: bytes) -> str:
    """POST one signed delivery on a connection of its own, as GitHub does; what came back."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST",
            "/webhook",
            body=body,
            headers={
                "content-type": "application/json",
                "x-github-event": "workflow_job",
                "x-github-delivery": str(uuid.uuid4()),
                "x-hub-signature-256": sign(WEBHOOK_SECRET, body),
            },
        )
        response = connection.getresponse()
        return f"{response.status} {response.read().decode()}"
    except OSError as exc:
        return type(exc).__name__
    finally:
        connection.close()


def test_1000_deliveries_64_at_once_on_fresh_connections_all_count_once(
    autoscale_env: AutoscaleEnv, webhook_command: Callable[..., WebhookCommand]
) -> None:
    key = autoscale_env.create_scale_set("burst", min_runners=0, max_runners=5)
    webhook = webhook_command()
    bodies = [job_event(job_id) for job_id in range(1, 1001)]
    with ThreadPoolExecutor(max_workers=64) as senders:
        answers = Counter(senders.map(lambda body: deliver(webhook.port, body), bodies))
    applied = f'200 {{"message": "applied", "scale_set": "{key}"}}'
    assert answers == {applied: 1000}
    assert autoscale_env.store.active(key) == 1000


def unsigned_upload(port: int, size: int, stall_s: float) -> str:
    """Send a ``size``-byte body with a wrong signature over a raw socket, stalling
    ``stall_s`` before its last byte, as a hostile client would; the status line."""
    head = (
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: workflow_job\r\n"
        f"X-GitHub-Delivery: {uuid.uuid4()}\r\nX-Hub-Signature-256: sha256={'0' * 64}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as conn:
            conn.sendall(head + b"{" + b" " * (size - 2))
            time.sleep(stall_s)
            conn.sendall(b"}")
            return conn.makefile("rb").readline().decode().strip()
    except OSError as exc:
        return type(exc).__name__


def test_160_unauthenticated_megabyte_bodies_stay_well_inside_the_memory_limit(
    autoscale_env: AutoscaleEnv, webhook_command: Callable[..., WebhookCommand]
) -> None:
    key = autoscale_env.create_scale_set("flood", min_runners=0, max_runners=5)
    webhook = webhook_command()
    receiver = psutil.Process(webhook.process.pid)
    peak = receiver.memory_info().rss
    flooding = threading.Event()
    flooding.set()

    def sample() -> None:
        nonlocal peak
        while flooding.is_set():
            peak = max(peak, receiver.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=160) as clients:
            answers = Counter(
                clients.map(lambda _: unsigned_upload(webhook.port, MiB - 1024, 0.3), range(160))
            )
    finally:
        flooding.clear()
        sampler.join()
    assert answers == {"HTTP/1.1 401 Unauthorized": 160}
    assert peak < 160 * MiB, f"peak RSS {peak / MiB:.0f} MiB"
    # It still serves GitHub afterwards.
    assert deliver(webhook.port, job_event(1)).startswith("200 ")
    assert autoscale_env.store.active(key) == 1
    assert httpx.get(webhook.url.replace("/webhook", "/livez")).status_code == 200
