"""Removals keep to GitHub's points a minute for delete-runner, on the real servers: a
scale-down larger than a minute's allowance removes what the minute allows, leaves the rest
for the next minute and never draws a secondary-limit answer (a bench under GitHub.com's
limits once drew 102 429s scaling 200 runners down, and left 60 registrations behind)."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.pipeline import TestPipeline as Pipeline

pytestmark = pytest.mark.integration

# 10 DELETEs a minute at 5 points each.
POINTS_PER_MINUTE = 50
REMOVALS_PER_MINUTE = POINTS_PER_MINUTE // 5


def test_a_scale_down_past_a_minutes_removals_waits_for_the_next_minute(
    pipeline: Pipeline,
) -> None:
    pipeline.start_workers(1)
    pipeline.start_reconciler(
        env={"PROVISIONER_GITHUB_REGISTRATIONS_PER_MINUTE": str(REMOVALS_PER_MINUTE)}
    )
    pipeline.apply_scale_set("runners", replicas=15)
    pipeline.wait_for_runners(15, timeout=60)
    admin = pipeline.ghsim.admin
    admin.configure(secondary_points_per_minute=POINTS_PER_MINUTE)
    refused_before = admin.counters().get("secondary_rate_limited", 0)

    started = time.monotonic()
    pipeline.scale("runners", 0)
    pipeline.wait_for_runners(15 - REMOVALS_PER_MINUTE, timeout=30)
    took_first = time.monotonic() - started
    pipeline.wait_for_runners(0, timeout=120)
    took_all = time.monotonic() - started

    assert admin.counters().get("secondary_rate_limited", 0) == refused_before
    assert admin.registrations() == []
    # A minute's worth at once; the other 5 only once the minute has passed.
    assert took_first < 30
    assert took_all >= 55, f"all 15 removed in {took_all:.0f}s"
