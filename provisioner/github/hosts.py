"""Which GitHub a scale set talks to, and whether its token may go there. Pure.

github.com scopes use the configured API URL (https://api.github.com unless set otherwise, as
for the simulator); a GitHub Enterprise Server scope uses ``https://HOST/api/v3`` unless the
scale set names its API URL. A credential is only ever sent to a host the operator allowed:
github.com always, others when listed in the settings."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from provisioner.github.models import GITHUB_COM, GitHubScope

GHES_API_PATH = "/api/v3"


class HostNotAllowed(ValueError):
    """The scale set points at a GitHub host the operator did not allow: its token is not
    sent there."""

    def __init__(self, host: str, field: str) -> None:
        super().__init__(
            f"{field} points at {host}, which is not an allowed GitHub host; its credentials "
            f"are not sent there. Add {host} to --github-allowed-hosts "
            "(PROVISIONER_GITHUB_ALLOWED_HOSTS) if it is your GitHub Enterprise Server"
        )
        self.host = host
        self.field = field


def api_url_for(scope: GitHubScope, github_com_api_url: str, override: str | None = None) -> str:
    """The REST API base URL for ``scope``."""
    if override:
        return override.rstrip("/")
    if scope.host in (GITHUB_COM, f"www.{GITHUB_COM}"):
        return github_com_api_url.rstrip("/")
    return f"{scope.scheme}://{scope.host}{GHES_API_PATH}"


def check_allowed(
    scope: GitHubScope, api_url: str, allowed_hosts: Iterable[str], override: bool
) -> None:
    """HostNotAllowed unless both the scope's host and the API URL's are allowed. The API URL
    for github.com is the operator's own setting, so it is trusted as it is."""
    allowed = {GITHUB_COM, f"www.{GITHUB_COM}", *(h.strip().lower() for h in allowed_hosts)}
    if scope.host not in allowed:
        raise HostNotAllowed(scope.host, "spec.githubConfigUrl")
    if override:
        api_host = urlsplit(api_url).netloc.lower()
        if api_host not in allowed and api_host != f"api.{GITHUB_COM}":
            raise HostNotAllowed(api_host, "spec.githubApiUrl")
