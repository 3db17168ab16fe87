"""The simulator's workflow jobs: the REST lists polling reads, and the admin endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from provisioner.ghsim.jobs import JobsAdmin
from tests.autoscale.conftest import wait_for
from tests.fixtures.ghsim import Ghsim

REPO = "acme/app"


@pytest.fixture
def jobs(ghsim: Ghsim) -> Iterator[JobsAdmin]:
    with JobsAdmin(ghsim.url) as admin:
        yield admin


def test_runs_and_their_jobs_are_listed_as_github_lists_them(ghsim: Ghsim, jobs: JobsAdmin) -> None:
    ids = jobs.enqueue(REPO, ["self-hosted", "gpu"], count=3)
    jobs.enqueue("acme/other", ["self-hosted"], count=1)
    with ghsim.http() as http:
        runs = http.get(f"/repos/{REPO}/actions/runs", params={"status": "queued"}).json()
        assert runs["total_count"] == 1
        run = runs["workflow_runs"][0]
        assert run["status"] == "queued"
        listed = http.get(f"/repos/{REPO}/actions/runs/{run['id']}/jobs").json()
        assert listed["total_count"] == 3
        assert [job["id"] for job in listed["jobs"]] == ids
        assert all(job["labels"] == ["self-hosted", "gpu"] for job in listed["jobs"])
        assert (
            http.get(f"/repos/{REPO}/actions/runs", params={"status": "in_progress"}).json()[
                "total_count"
            ]
            == 0
        )
        assert http.get(f"/repos/acme/other/actions/runs/{run['id']}/jobs").status_code == 404


def test_job_lists_page_like_github(ghsim: Ghsim, jobs: JobsAdmin) -> None:
    jobs.enqueue(REPO, ["self-hosted"], count=5)
    with ghsim.http() as http:
        run_id = http.get(f"/repos/{REPO}/actions/runs").json()["workflow_runs"][0]["id"]
        pages = [
            http.get(
                f"/repos/{REPO}/actions/runs/{run_id}/jobs", params={"per_page": 2, "page": page}
            ).json()["jobs"]
            for page in (1, 2, 3, 4)
        ]
    assert [len(page) for page in pages] == [2, 2, 1, 0]


def test_the_lists_need_a_credential(ghsim: Ghsim, jobs: JobsAdmin) -> None:
    jobs.enqueue(REPO, ["self-hosted"])
    assert httpx.get(f"{ghsim.url}/repos/{REPO}/actions/runs").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"repository": "nope", "labels": ["x"]}, "repository"),
        ({"repository": REPO, "labels": []}, "labels"),
        ({"repository": REPO, "labels": ["x"], "count": 0}, "count"),
        ({"repository": REPO, "labels": ["x"], "duration_s": -1}, "duration_s"),
    ],
)
def test_a_bad_enqueue_is_refused_naming_the_field(ghsim: Ghsim, body: dict, field: str) -> None:
    answer = httpx.post(f"{ghsim.url}/_sim/jobs", json=body)
    assert answer.status_code == 422
    assert field in answer.json()["message"]


def test_a_runner_takes_a_job_only_with_every_label_and_deregisters_after_it(
    ghsim: Ghsim, jobs: JobsAdmin
) -> None:
    jobs.enqueue(REPO, ["self-hosted", "gpu"], count=1, duration_s=0.1)
    with ghsim.http() as http:
        for name, labels in (("plain", ["cpu"]), ("gpu", ["gpu"])):
            answer = http.post(
                f"/repos/{REPO}/actions/runners/generate-jitconfig",
                json={"name": name, "runner_group_id": 1, "labels": labels},
            )
            assert answer.status_code == 201
            ghsim.admin.set_runner_state(name, "online")

    wait_for(lambda: jobs.jobs()["counts"]["completed"] == 1, 10, "the job to complete")
    job = jobs.jobs()["jobs"][0]
    assert job["status"] == "completed"
    assert job["runner_name"] == "gpu"
    assert ghsim.runner_names() == {"plain"}


def test_webhooks_can_be_switched_off_and_reset_forgets_jobs(ghsim: Ghsim, jobs: JobsAdmin) -> None:
    jobs.configure_webhooks(url="http://127.0.0.1:9/none", secret="s", enabled=False)
    jobs.enqueue(REPO, ["self-hosted"], count=2)
    state = jobs.webhooks()
    assert (state["enabled"], state["signed"], state["deliveries"]["suppressed"]) == (
        False,
        True,
        2,
    )
    assert "secret" not in state
    ghsim.admin.reset()
    assert jobs.jobs()["counts"] == {"queued": 0, "in_progress": 0, "completed": 0}
    assert jobs.webhooks()["url"] is None
