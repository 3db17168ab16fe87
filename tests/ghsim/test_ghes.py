"""The project's own GitHub client against the simulator in GitHub Enterprise Server's form:
the API at ``http://HOST:PORT/api/v3``, with a PAT and with a GitHub App."""

from __future__ import annotations

import pytest

from provisioner.github import GitHubClient, GitHubScope
from provisioner.github.auth import AppCredentials, Credentials, PatCredentials
from tests.fixtures.ghsim import Ghsim

ORG = GitHubScope.parse("https://github.com/acme")


def _pat(ghsim: Ghsim) -> Credentials:
    return PatCredentials(ghsim.token)


def _app(ghsim: Ghsim) -> Credentials:
    return AppCredentials(ghsim.app.app_id, ghsim.app.installation_id, ghsim.app.private_key_pem)


@pytest.mark.parametrize("credentials", [_pat, _app], ids=["pat", "app"])
def test_the_client_works_against_the_ghes_form(ghsim: Ghsim, credentials) -> None:
    with GitHubClient(ghsim.ghes_api_url, credentials(ghsim), timeout=5.0) as github:
        created = github.generate_jitconfig(ORG, "ghes-1", 1, ["linux"])
        assert github.find_runner_by_name(ORG, "ghes-1") == created.runner
        assert [runner.name for runner in github.list_runners(ORG)] == ["ghes-1"]
        github.delete_runner(ORG, created.runner.id)
    assert ghsim.runner_names() == set()
    calls = ghsim.admin.counters()["calls"]
    assert calls["POST /orgs/{org}/actions/runners/generate-jitconfig"] == {"201": 1}
