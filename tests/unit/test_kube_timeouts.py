"""Every Kubernetes call has a timeout: an API server that accepts the connection and then
never answers ends the call with KubeUnavailable instead of blocking its thread for good."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from provisioner.kube import client as kube_client
from provisioner.kube.client import TimeoutApiClient
from provisioner.kube.errors import KubeUnavailable, kube_errors


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections, reads nothing and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_a_call_to_a_server_that_never_answers_times_out(silent_server, monkeypatch):
    monkeypatch.setattr(kube_client, "READ_TIMEOUT_SECONDS", 0.3)
    configuration = client.Configuration(host=silent_server)
    api = TimeoutApiClient(configuration)

    started = time.monotonic()
    no_answer = pytest.raises(KubeUnavailable, match="read Lease ns/leader: no answer")
    with no_answer, kube_errors("read Lease ns/leader"):
        client.CoordinationV1Api(api).read_namespaced_lease("leader", "ns")
    assert time.monotonic() - started < 3


def test_a_watch_gets_the_longer_read_timeout(silent_server, monkeypatch):
    # A watch may be quiet for minutes (bookmarks aside): it waits longer than a call does,
    # but not for ever either.
    monkeypatch.setattr(kube_client, "WATCH_READ_TIMEOUT_SECONDS", 0.3)
    configuration = client.Configuration(host=silent_server)
    api = TimeoutApiClient(configuration)

    started = time.monotonic()
    with pytest.raises(KubeUnavailable), kube_errors("watch Pods"):
        client.CoreV1Api(api).list_namespaced_pod("ns", watch=True, _preload_content=False)
    # urllib3 tries a GET four times; far less than one plain call's 30 s read timeout.
    assert time.monotonic() - started < 10
