import threading

import pytest

from provisioner.limits import CircuitBreaker, CircuitOpen
from provisioner.limits.breaker import CLOSED, HALF_OPEN, OPEN


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def opened(clock: Clock, threshold: int = 3) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, reset_timeout=5.0, clock=clock)
    for _ in range(threshold):
        breaker.before_call()
        breaker.record_failure()
    return breaker


def test_opens_after_the_threshold_of_consecutive_failures(clock):
    breaker = CircuitBreaker(3, reset_timeout=5.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    breaker.before_call()  # still closed after 2
    breaker.record_failure()
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpen) as raised:
        breaker.before_call()
    assert raised.value.retry_after == pytest.approx(5.0)


def test_a_success_resets_the_count(clock):
    breaker = CircuitBreaker(3, reset_timeout=5.0, clock=clock)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    breaker.before_call()
    assert breaker.state == CLOSED


def test_open_fails_fast_until_the_reset_timeout(clock):
    breaker = opened(clock)
    clock.now += 4.0
    with pytest.raises(CircuitOpen) as raised:
        breaker.before_call()
    assert raised.value.retry_after == pytest.approx(1.0)


def test_half_open_lets_exactly_one_probe_through(clock):
    breaker = opened(clock)
    clock.now += 5.0
    breaker.before_call()
    assert breaker.state == HALF_OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_a_successful_probe_closes(clock):
    breaker = opened(clock)
    clock.now += 5.0
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == CLOSED
    breaker.before_call()
    breaker.before_call()


def test_a_failed_probe_reopens_for_another_timeout(clock):
    breaker = opened(clock)
    clock.now += 5.0
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == OPEN
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 0.1
    breaker.before_call()


def test_a_probe_that_never_reports_is_replaced_after_the_timeout(clock):
    breaker = opened(clock)
    clock.now += 5.0
    breaker.before_call()  # the probe's call ends in, say, a 404: no report
    clock.now += 5.0
    breaker.before_call()
    assert breaker.state == HALF_OPEN


def test_concurrent_callers_get_a_single_probe(clock):
    breaker = opened(clock)
    clock.now += 5.0
    passed = []
    barrier = threading.Barrier(8)

    def call():
        barrier.wait()
        try:
            breaker.before_call()
            passed.append(1)
        except CircuitOpen:
            pass

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(passed) == 1


@pytest.mark.parametrize(("threshold", "timeout"), [(0, 1.0), (1, 0.0)])
def test_bad_parameters_are_refused(threshold, timeout):
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, timeout)
