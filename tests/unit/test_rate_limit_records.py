"""How often a process writes a credential's rate-limit headers to Redis: every answer carries
them, but the budget-aware planning needs them exactly only when little is left."""

from __future__ import annotations

from provisioner.github import RateLimitInfo
from provisioner.runtime.limits import (
    RATE_LIMIT_RECORD_EVERY_CALL_BELOW,
    RATE_LIMIT_RECORD_SECONDS,
    should_record_rate_limit,
)

RESET = 1_800_000_000


def info(remaining: int, reset: int = RESET) -> RateLimitInfo:
    return RateLimitInfo(
        limit=5000, remaining=remaining, used=5000 - remaining, reset=reset, resource="core"
    )


def test_the_first_answer_is_recorded() -> None:
    assert should_record_rate_limit(None, 100.0, info(4999))


def test_a_plentiful_budget_is_recorded_once_a_second() -> None:
    recorded = (100.0, float(RESET))
    assert not should_record_rate_limit(recorded, 100.5, info(4000))
    assert should_record_rate_limit(recorded, 100.0 + RATE_LIMIT_RECORD_SECONDS, info(4000))


def test_a_new_window_is_recorded_at_once() -> None:
    recorded = (100.0, float(RESET))
    assert should_record_rate_limit(recorded, 100.1, info(5000, reset=RESET + 3600))


def test_a_budget_nearly_spent_is_recorded_on_every_answer() -> None:
    recorded = (100.0, float(RESET))
    assert should_record_rate_limit(recorded, 100.1, info(RATE_LIMIT_RECORD_EVERY_CALL_BELOW - 1))
