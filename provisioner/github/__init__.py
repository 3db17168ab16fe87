"""GitHub REST client: JIT configs, runners, typed errors, PAT and GitHub App auth."""

from provisioner.github.client import GitHubClient, github_http
from provisioner.github.models import GitHubScope, JitConfig, RateLimitInfo, Runner

__all__ = ["GitHubClient", "GitHubScope", "JitConfig", "RateLimitInfo", "Runner", "github_http"]
