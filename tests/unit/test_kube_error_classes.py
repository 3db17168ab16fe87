"""Kubernetes answers become typed errors at one boundary (kube/errors.py), and the creation
decides what each means by type (creation/failures.py), with a default for the unknown."""

import json

import pytest
import redis
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError

from provisioner.creation import outcome
from provisioner.creation.failures import PermanentFailure, RetryableFailure, classify
from provisioner.github.errors import (
    Conflict,
    GitHubError,
    GitHubUnavailable,
    NotFound,
    RateLimited,
    RunnerBusy,
    Unauthorized,
)
from provisioner.kube.errors import (
    KubeConflict,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeThrottled,
    KubeUnavailable,
    QuotaExceeded,
    kube_error,
)


def api_error(status: int, message: str = "", headers: dict | None = None) -> ApiException:
    error = ApiException(status=status, reason="reason")
    error.body = json.dumps({"message": message})
    error.headers = headers or {}
    return error


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (404, "not found", KubeNotFound),
        (409, "already exists", KubeConflict),
        (403, 'pods "r-1" is forbidden: exceeded quota: pods', QuotaExceeded),
        (403, "cannot create resource pods", KubeForbidden),
        (422, "spec.containers[0].image: Required value", KubeInvalid),
        (400, "bad request", KubeInvalid),
        (429, "too many requests", KubeThrottled),
        (503, "unavailable", KubeUnavailable),
        (418, "a status nobody documented", KubeUnavailable),
    ],
)
def test_each_api_answer_has_its_type_and_keeps_the_servers_words(status, message, kind):
    error = kube_error(api_error(status, message), "create Pod ns/r-1")
    assert type(error) is kind
    assert str(error).startswith("create Pod ns/r-1: ")
    assert message in str(error)


def test_no_answer_at_all_is_an_outage():
    error = kube_error(ProtocolError("connection reset"), "list Pods")
    assert isinstance(error, KubeUnavailable)
    assert "no answer" in str(error)


def test_api_throttling_carries_retry_after():
    error = kube_error(api_error(429, "slow down", {"Retry-After": "3"}), "create Pod")
    assert isinstance(error, KubeThrottled)
    assert error.retry_after == 3.0


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (QuotaExceeded("quota"), RetryableFailure, outcome.REASON_QUOTA),
        (KubeForbidden("rbac"), PermanentFailure, outcome.REASON_FORBIDDEN),
        (KubeInvalid("image"), PermanentFailure, outcome.REASON_POD_REJECTED),
        (KubeUnavailable("down"), RetryableFailure, outcome.REASON_KUBE_UNAVAILABLE),
        (KubeNotFound("ns"), PermanentFailure, outcome.REASON_KUBE_NOT_FOUND),
        (RateLimited("429", 30.0), RetryableFailure, outcome.REASON_RATE_LIMITED),
        (GitHubUnavailable("timeout"), RetryableFailure, outcome.REASON_GITHUB_UNAVAILABLE),
        (Unauthorized("401", 401), PermanentFailure, outcome.REASON_GITHUB_UNAUTHORIZED),
        (NotFound("404", 404), PermanentFailure, outcome.REASON_GITHUB_NOT_FOUND),
        (Conflict("409", 409), PermanentFailure, outcome.REASON_NAME_TAKEN),
        (RunnerBusy("422", 422), PermanentFailure, outcome.REASON_RUNNER_BUSY),
        (
            GitHubError("403 Resource not accessible", 403),
            PermanentFailure,
            outcome.REASON_GITHUB_REFUSED,
        ),
        (
            GitHubError("422 Validation failed", 422),
            PermanentFailure,
            outcome.REASON_GITHUB_REFUSED,
        ),
        (redis.ConnectionError("down"), RetryableFailure, outcome.REASON_REDIS_UNAVAILABLE),
        (KeyError("a bug"), PermanentFailure, outcome.REASON_INTERNAL),
    ],
)
def test_every_failure_is_retried_or_final_by_its_type(error, kind, reason):
    failure = classify(error)
    assert type(failure) is kind
    assert failure.reason == reason


def test_a_github_answer_never_seen_before_ends_the_creation():
    class Teapot(GitHubError):
        pass

    assert isinstance(classify(Teapot("418", 418)), PermanentFailure)


def test_reasons_are_a_closed_set_and_details_carry_the_words():
    failure = classify(
        GitHubError("generate-jitconfig: GitHub answered 403 (Resource not accessible)", 403)
    )
    assert failure.reason == outcome.REASON_GITHUB_REFUSED
    assert "Resource not accessible" in failure.detail
