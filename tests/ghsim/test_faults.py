"""Latency, injected errors, slow answers and dropped connections, turned on at run time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.fixtures.ghsim import Ghsim

RUNNERS = "/repos/acme/app/actions/runners"
JIT = f"{RUNNERS}/generate-jitconfig"


def _jit(http: httpx.Client, name: str) -> httpx.Response:
    return http.post(JIT, json={"name": name, "runner_group_id": 1, "labels": ["linux"]})


def _elapsed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


@pytest.mark.parametrize(
    "knobs",
    [
        {"latency_ms": 250},
        {"latency_distribution": "uniform:250:300"},
        {"latency_ms": 0, "latency_distribution": "normal:400:1"},
    ],
    ids=["fixed", "uniform", "normal"],
)
def test_latency_set_at_run_time_delays_answers(ghsim: Ghsim, knobs: dict) -> None:
    with ghsim.http() as http:
        ghsim.admin.configure(**knobs)
        assert _elapsed(lambda: http.get(RUNNERS)) >= 0.25


def test_fifty_clients_wait_out_the_latency_at_the_same_time(ghsim: Ghsim) -> None:
    # Long enough for all fifty to be in flight together even on a busy machine.
    ghsim.admin.configure(latency_ms=1000)
    with (
        ghsim.http(limits=httpx.Limits(max_connections=50)) as http,
        ThreadPoolExecutor(50) as pool,
    ):
        answers = list(pool.map(lambda i: _jit(http, f"r-{i}"), range(50)))
    assert {a.status_code for a in answers} == {201}
    assert ghsim.admin.counters()["max_concurrent"] == 50
    assert len(ghsim.admin.registrations()) == 50


def test_injected_errors_hit_only_the_chosen_endpoint(ghsim: Ghsim) -> None:
    ghsim.admin.configure(error_rate=1.0, error_status=502, error_endpoint="generate-jitconfig")
    with ghsim.http() as http:
        failed = _jit(http, "r-1")
        assert failed.status_code == 502
        assert failed.json()["message"]
        assert http.get(RUNNERS).status_code == 200
    assert ghsim.runner_names() == set()
    assert ghsim.admin.counters()["errors_injected"] == 1


def test_a_dropped_connection_may_still_have_registered_the_runner(ghsim: Ghsim) -> None:
    ghsim.admin.configure(drop_rate=1.0, fault_endpoint="generate-jitconfig")
    with ghsim.http() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            _jit(http, "r-1")
        assert ghsim.runner_names() == {"r-1"}
        ghsim.admin.configure(faults_take_effect=False)
        with pytest.raises(httpx.RemoteProtocolError):
            _jit(http, "r-2")
        assert ghsim.runner_names() == {"r-1"}
        assert http.get(RUNNERS).status_code == 200
    assert ghsim.admin.counters()["dropped"] == 2


def test_a_slow_answer_outlasts_the_client_timeout(ghsim: Ghsim) -> None:
    ghsim.admin.configure(slow_rate=1.0, slow_ms=5000)
    with ghsim.http(timeout=0.3) as http, pytest.raises(httpx.ReadTimeout):
        _jit(http, "r-1")
    # The request took effect before its answer was held back, as a timed-out call on GitHub can.
    assert ghsim.runner_names() == {"r-1"}
    assert ghsim.admin.counters()["slow"] == 1
    ghsim.admin.configure(slow_rate=0.0)
    with ghsim.http(timeout=2) as http:
        assert _jit(http, "r-1").status_code == 409


def test_an_unknown_path_gets_githubs_not_found(ghsim: Ghsim) -> None:
    with ghsim.http() as http:
        answer = http.get("/repos/acme/app/actions/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["message"] == "Not Found"


def test_a_slow_answer_without_effect_ends_in_504_and_registers_nothing(ghsim: Ghsim) -> None:
    ghsim.admin.configure(slow_rate=1.0, slow_ms=50, faults_take_effect=False)
    with ghsim.http(timeout=5) as http:
        answer = _jit(http, "r-1")
    assert answer.status_code == 504
    assert ghsim.runner_names() == set()
