"""What the receiver refuses changes nothing: neither the demand in Redis nor spec.replicas."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from provisioner.autoscale.service import Autoscaler
from provisioner.autoscale.signature import sign
from provisioner.autoscale.store import DemandStore
from tests.autoscale.conftest import LABELS, REPOSITORY, WEBHOOK_SECRET, AutoscaleEnv, wait_for

SCALE_SET = "linux"


def job_event(job_id: int, action: str = "queued", labels: list[str] = LABELS) -> bytes:
    owner, name = REPOSITORY.split("/")
    return json.dumps(
        {
            "action": action,
            "workflow_job": {"id": job_id, "run_id": 1, "status": action, "labels": labels},
            "repository": {"full_name": REPOSITORY, "name": name, "owner": {"login": owner}},
        }
    ).encode()


def post(
    env: AutoscaleEnv,
    body: bytes,
    *,
    event: str = "workflow_job",
    delivery: str | None = None,
    signature: str | None = "valid",
) -> httpx.Response:
    headers = {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()),
    }
    if signature == "valid":
        headers["x-hub-signature-256"] = sign(WEBHOOK_SECRET, body)
    elif signature is not None:
        headers["x-hub-signature-256"] = signature
    return httpx.post(env.receiver.url, content=body, headers=headers, timeout=10)


@pytest.fixture
def scale_set(autoscale_env: AutoscaleEnv) -> str:
    return autoscale_env.create_scale_set(SCALE_SET, min_runners=0, max_runners=5)


def unchanged(env: AutoscaleEnv, key: str, demand: int, replicas: int) -> bool:
    return env.store.active(key) == demand and env.replicas(SCALE_SET) == replicas


def test_a_signed_queued_job_raises_demand_and_replicas(
    autoscale_env: AutoscaleEnv, scale_set: str
) -> None:
    answer = post(autoscale_env, job_event(1))
    assert answer.status_code == 200
    assert answer.json() == {"message": "applied", "scale_set": scale_set}
    assert unchanged(autoscale_env, scale_set, demand=1, replicas=1)


@pytest.mark.parametrize(
    "signature",
    [None, "sha256=" + "0" * 64, sign(b"another secret", job_event(1)), "sha1=abc"],
    ids=["unsigned", "zeros", "other-secret", "sha1"],
)
def test_unsigned_or_mis_signed_is_401_and_changes_nothing(
    autoscale_env: AutoscaleEnv, scale_set: str, signature: str | None
) -> None:
    answer = post(autoscale_env, job_event(1), signature=signature)
    assert answer.status_code == 401
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)


def test_a_body_signed_for_other_content_is_401(
    autoscale_env: AutoscaleEnv, scale_set: str
) -> None:
    answer = post(autoscale_env, job_event(2), signature=sign(WEBHOOK_SECRET, job_event(1)))
    assert answer.status_code == 401
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)


def test_a_replayed_delivery_counts_once(autoscale_env: AutoscaleEnv, scale_set: str) -> None:
    delivery = str(uuid.uuid4())
    assert post(autoscale_env, job_event(1), delivery=delivery).json()["message"] == "applied"
    again = post(autoscale_env, job_event(1), delivery=delivery)
    assert again.status_code == 200
    assert again.json()["message"] == "duplicate"
    # The delivery id alone decides: a replay carrying another job is not counted either.
    other = post(autoscale_env, job_event(2), delivery=delivery)
    assert other.json()["message"] == "duplicate"
    assert unchanged(autoscale_env, scale_set, demand=1, replicas=1)


def test_a_10_mb_body_is_413_before_it_is_read(autoscale_env: AutoscaleEnv, scale_set: str) -> None:
    size = 10 * 1024 * 1024
    target = urlsplit(autoscale_env.receiver.url)
    head = (
        f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\n"
        f"X-GitHub-Event: workflow_job\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection((target.hostname, target.port), timeout=10) as conn:
        conn.sendall(head + b"{" + b" " * 65_536)
        answer = conn.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413")
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)


def test_a_10_mb_body_sent_whole_is_refused(autoscale_env: AutoscaleEnv, scale_set: str) -> None:
    body = b'{"action": "queued", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    try:
        status = post(autoscale_env, body).status_code
    except httpx.TransportError:
        # The receiver may close the connection before the client finishes sending.
        status = 413
    assert status == 413
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        json.dumps({"action": "queued", "repository": {"full_name": REPOSITORY}}).encode(),
        json.dumps(
            {
                "action": "queued",
                "workflow_job": {"id": "7", "labels": LABELS},
                "repository": {"full_name": REPOSITORY},
            }
        ).encode(),
        json.dumps({"action": "queued", "workflow_job": {"id": 7, "labels": LABELS}}).encode(),
    ],
    ids=["invalid-json", "array", "no-job", "string-id", "no-repository"],
)
def test_invalid_json_or_missing_fields_is_400(
    autoscale_env: AutoscaleEnv, scale_set: str, body: bytes
) -> None:
    answer = post(autoscale_env, body)
    assert answer.status_code == 400
    assert answer.json()["message"]
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)


def test_ping_is_200_and_other_events_are_202(autoscale_env: AutoscaleEnv, scale_set: str) -> None:
    assert post(autoscale_env, b'{"zen": "hi"}', event="ping").status_code == 200
    assert post(autoscale_env, job_event(1), event="push").status_code == 202
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)


def test_jobs_no_scale_set_can_run_are_not_counted(
    autoscale_env: AutoscaleEnv, scale_set: str
) -> None:
    answer = post(autoscale_env, job_event(1, labels=["ubuntu-latest"]))
    assert answer.json()["message"] == "unmatched"
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)


def test_completed_before_in_progress_does_not_bring_the_job_back(
    autoscale_env: AutoscaleEnv, scale_set: str
) -> None:
    post(autoscale_env, job_event(1, "queued"))
    post(autoscale_env, job_event(1, "completed"))
    late = post(autoscale_env, job_event(1, "in_progress"))
    assert late.json()["message"] == "stale"
    assert autoscale_env.store.active(scale_set) == 0


def test_demand_survives_a_restart_of_the_autoscaler(
    autoscale_env: AutoscaleEnv, scale_set: str
) -> None:
    for job_id in (1, 2, 3):
        post(autoscale_env, job_event(job_id))
    restarted = Autoscaler(DemandStore(autoscale_env.redis), autoscale_env.targets)
    assert restarted.store.active(scale_set) == 3
    restarted.sync()
    assert autoscale_env.replicas(SCALE_SET) == 3


def test_a_chunked_body_is_refused_unread(autoscale_env: AutoscaleEnv, scale_set: str) -> None:
    body = job_event(1)
    answer = httpx.post(
        autoscale_env.receiver.url,
        content=iter([body]),  # no length: httpx sends it chunked
        headers={
            "x-github-event": "workflow_job",
            "x-github-delivery": str(uuid.uuid4()),
            "x-hub-signature-256": sign(WEBHOOK_SECRET, body),
        },
    )
    assert answer.status_code == 411
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)


def test_a_signed_body_nested_too_deeply_to_parse_is_400(
    autoscale_env: AutoscaleEnv, scale_set: str
) -> None:
    answer = post(autoscale_env, b"[" * 100_000 + b"]" * 100_000)
    assert answer.status_code == 400
    assert answer.json()["message"]
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_a_client_hanging_up_mid_body_is_one_debug_line(
    autoscale_env: AutoscaleEnv,
    scale_set: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    reset: bool,
) -> None:
    caplog.set_level(logging.DEBUG, logger="provisioner.autoscale")
    target = urlsplit(autoscale_env.receiver.url)
    head = (
        f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\n"
        f"X-GitHub-Event: workflow_job\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    conn = socket.create_connection((target.hostname, target.port), timeout=10)
    conn.sendall(head + b'{"action": ')
    time.sleep(0.2)  # the receiver is reading the body now
    if reset:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()

    def hang_ups() -> list[logging.LogRecord]:
        return [record for record in caplog.records if "hung up" in record.getMessage()]

    wait_for(hang_ups, 5, "the receiver to notice the hang-up")
    time.sleep(0.3)  # room for anything else it would log about this connection
    assert [(record.levelno, record.exc_info) for record in hang_ups()] == [(logging.DEBUG, None)]
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG] == []
    assert "Traceback" not in capsys.readouterr().err
    assert unchanged(autoscale_env, scale_set, demand=0, replicas=0)
