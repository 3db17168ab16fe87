"""Typed GitHub failures. Messages name the operation and what to do, never a secret."""

from __future__ import annotations


class GitHubError(Exception):
    """A GitHub call failed; ``status`` is the HTTP status when GitHub answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(GitHubError):
    """A primary or secondary rate limit refused the call; wait ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float, status: int | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class Conflict(GitHubError):
    """409: e.g. a runner with this name is already registered."""


class NotFound(GitHubError):
    """404: the runner, repository, organization, enterprise or installation does not exist."""


class Unauthorized(GitHubError):
    """401: GitHub rejected the credential; the message says which one (never its value)."""


class ServerError(GitHubError):
    """5xx from GitHub."""


class RunnerBusy(GitHubError):
    """422 on delete: the runner is running a job and cannot be removed now."""


class GitHubUnavailable(GitHubError):
    """No answer: timeout or dropped connection. The request may or may not have taken effect."""


class InvalidGitHubResponse(GitHubError):
    """GitHub answered with a body that does not parse or lacks ``field``."""

    def __init__(self, message: str, field: str, status: int | None = None) -> None:
        super().__init__(message, status)
        self.field = field
