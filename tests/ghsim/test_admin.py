"""Playing runners through the admin API, and the counters tests and benchmarks read."""

from __future__ import annotations

import pytest

from provisioner.ghsim.admin import SimulatorAdminError
from tests.fixtures.ghsim import Ghsim

JIT = "/repos/acme/app/actions/runners/generate-jitconfig"


def _register(ghsim: Ghsim, name: str) -> int:
    with ghsim.http() as http:
        answer = http.post(JIT, json={"name": name, "runner_group_id": 1, "labels": ["linux"]})
    assert answer.status_code == 201, answer.text
    return answer.json()["runner"]["id"]


def test_registrations_show_jit_runners_offline_with_their_scope(ghsim: Ghsim) -> None:
    runner_id = _register(ghsim, "r-1")
    [registration] = ghsim.admin.registrations()
    assert registration["id"] == runner_id
    assert registration["name"] == "r-1"
    assert registration["scope"] == "repos/acme/app"
    assert (registration["status"], registration["busy"]) == ("offline", False)


def test_state_changes_are_seen_through_the_github_api(ghsim: Ghsim) -> None:
    runner_id = _register(ghsim, "r-1")
    url = f"/repos/acme/app/actions/runners/{runner_id}"
    with ghsim.http() as http:
        ghsim.admin.set_runner_state("r-1", "online")
        assert http.get(url).json()["status"] == "online"
        ghsim.admin.set_runner_state(runner_id, "busy")
        runner = http.get(url).json()
        assert (runner["status"], runner["busy"]) == ("online", True)
        assert http.delete(url).status_code == 422
        ghsim.admin.set_runner_state(runner_id, "idle")
        assert http.get(url).json()["busy"] is False
        ghsim.admin.set_runner_state(runner_id, "finished")
        assert http.get(url).status_code == 404
    assert ghsim.admin.registrations() == []


def test_unknown_runner_or_state_is_refused(ghsim: Ghsim) -> None:
    _register(ghsim, "r-1")
    with pytest.raises(SimulatorAdminError, match="404"):
        ghsim.admin.set_runner_state("nobody", "online")
    with pytest.raises(SimulatorAdminError, match="state must be one of"):
        ghsim.admin.set_runner_state("r-1", "sleeping")


def test_counters_count_calls_by_endpoint_and_status(ghsim: Ghsim) -> None:
    _register(ghsim, "r-1")
    with ghsim.http() as http:
        http.post(JIT, json={"name": "r-1", "runner_group_id": 1, "labels": ["linux"]})
        http.get("/repos/acme/app/actions/runners/99999")
    ghsim.admin.registrations()  # admin calls are not counted
    counters = ghsim.admin.counters()
    assert counters["calls"] == {
        f"POST {JIT.replace('acme/app', '{owner}/{repo}')}": {"201": 1, "409": 1},
        "GET /repos/{owner}/{repo}/actions/runners/{runner_id}": {"404": 1},
    }
    assert counters["by_status"] == {"201": 1, "409": 1, "404": 1}
    assert counters["total"] == 3


def test_reset_forgets_runners_counters_and_knobs(ghsim: Ghsim) -> None:
    _register(ghsim, "r-1")
    ghsim.admin.configure(latency_ms=250)
    ghsim.admin.reset()
    assert ghsim.admin.registrations() == []
    assert ghsim.admin.counters()["total"] == 0
    assert ghsim.admin.config()["latency_ms"] == 0


def test_configure_refuses_a_bad_knob_naming_it(ghsim: Ghsim) -> None:
    with pytest.raises(SimulatorAdminError, match="error_rate"):
        ghsim.admin.configure(error_rate=1.5)
    with pytest.raises(SimulatorAdminError, match="no_such_knob"):
        ghsim.admin.configure(no_such_knob=1)
    with pytest.raises(SimulatorAdminError, match="pats: is fixed at start"):
        ghsim.admin.configure(pats=["other"])
    assert ghsim.admin.config()["error_rate"] == 0
