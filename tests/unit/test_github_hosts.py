"""Which API a scale set's GitHub calls go to, and where its credentials may go."""

import pytest

from provisioner.github.hosts import HostNotAllowed, api_url_for, check_allowed
from provisioner.github.models import GitHubScope

GITHUB_COM_API = "https://api.github.com"


def test_github_com_uses_the_configured_api_url():
    scope = GitHubScope.parse("https://github.com/acme")
    assert api_url_for(scope, "http://127.0.0.1:8089/") == "http://127.0.0.1:8089"


def test_an_enterprise_server_host_gets_its_api_v3():
    scope = GitHubScope.parse("https://ghe.example.net/acme/app")
    assert api_url_for(scope, GITHUB_COM_API) == "https://ghe.example.net/api/v3"


def test_an_explicit_api_url_wins():
    scope = GitHubScope.parse("https://ghe.example.net/acme")
    assert api_url_for(scope, GITHUB_COM_API, "https://api.ghe.example.net/") == (
        "https://api.ghe.example.net"
    )


def test_github_com_is_always_allowed():
    scope = GitHubScope.parse("https://github.com/acme")
    check_allowed(scope, GITHUB_COM_API, (), override=False)


def test_a_host_not_allowed_is_refused_naming_the_field_and_the_setting():
    scope = GitHubScope.parse("https://github.example.net/octo-org")
    with pytest.raises(HostNotAllowed) as refused:
        check_allowed(scope, "https://github.example.net/api/v3", (), override=False)
    assert "spec.githubConfigUrl" in str(refused.value)
    assert "--github-allowed-hosts" in str(refused.value)


def test_an_allowed_enterprise_host_passes():
    scope = GitHubScope.parse("https://ghe.corp:8443/octo-org")
    check_allowed(scope, "https://ghe.corp:8443/api/v3", ("ghe.corp:8443",), override=False)


def test_an_api_url_override_must_be_allowed_too():
    scope = GitHubScope.parse("https://ghe.corp/octo-org")
    with pytest.raises(HostNotAllowed, match=r"spec\.githubApiUrl"):
        check_allowed(scope, "https://evil.example/api", ("ghe.corp",), override=True)
