import json

from kubernetes.client.exceptions import ApiException

from workers import outcome
from workers.creation import PermanentFailure, RetryableFailure, classify_kube_error


def api_error(status: int, message: str = "", headers: dict | None = None) -> ApiException:
    error = ApiException(status=status, reason="reason")
    error.body = json.dumps({"message": message})
    error.headers = headers or {}
    return error


def test_quota_refusals_are_retried_because_quotas_get_raised():
    error = classify_kube_error(api_error(403, 'pods "r-1" is forbidden: exceeded quota: pods'))
    assert isinstance(error, RetryableFailure)
    assert error.reason == outcome.REASON_QUOTA


def test_rbac_refusals_are_final_and_carry_the_api_message():
    error = classify_kube_error(api_error(403, "cannot create resource pods"))
    assert isinstance(error, PermanentFailure)
    assert error.reason == outcome.REASON_FORBIDDEN
    assert "cannot create resource pods" in str(error)


def test_an_invalid_pod_is_final_and_says_why():
    error = classify_kube_error(api_error(422, "spec.containers[0].image: Required value"))
    assert isinstance(error, PermanentFailure)
    assert error.reason == outcome.REASON_POD_REJECTED
    assert "spec.containers[0].image" in str(error)


def test_api_throttling_honours_retry_after():
    error = classify_kube_error(api_error(429, "too many requests", {"Retry-After": "3"}))
    assert isinstance(error, RetryableFailure)
    assert (error.retry_after, error.throttled) == (3.0, True)


def test_server_errors_are_retried():
    assert isinstance(classify_kube_error(api_error(503)), RetryableFailure)
