"""The `--tenants` results: ratios to one tenant alone and to the least time, table and JSON."""

from __future__ import annotations

import io
import json

from rich.console import Console

from provisioner.bench.report import BenchReport, Leaks
from provisioner.bench.tenant_report import TenantComparison, TenantGroupRun, TenantOutcome
from provisioner.bench.tenants import MinimumTime


def outcome(
    name: str, seconds: float | None, runners: int = 20, minimum: float | None = None
) -> TenantOutcome:
    return TenantOutcome(
        scale_set=name,
        organisation=f"org-{name}",
        credential=f"pat:{len(name)}",
        runners=runners,
        created=runners if seconds is not None else runners // 2,
        seconds=seconds,
        github_calls=2 * runners,
        answered_429=1,
        answered_403=0,
        budget_limit=5000,
        budget_left_at_n=5000 - runners,
        budget_left_at_end=5000 - 2 * runners,
        leaks=Leaks(0, 0, 0),
        minimum=None if minimum is None else MinimumTime(minimum, "points a minute"),
    )


def group(*tenants: TenantOutcome) -> TenantGroupRun:
    return TenantGroupRun(
        list(tenants), secondary_rate_limited=2, primary_rate_limited=0, registrations_capped=0
    )


def comparison(together: TenantGroupRun, alone_seconds: float = 4.0) -> TenantComparison:
    return TenantComparison(
        runners=together.runners,
        tenants=len(together.tenants),
        concurrency=10,
        github_latency_ms=100,
        github_profile="github.com",
        alone=group(outcome("alone", alone_seconds, minimum=2.0)),
        together=together,
    )


def test_time_to_n_is_the_slowest_tenant_and_ratios_are_against_one_alone() -> None:
    result = comparison(group(outcome("t1", 5.0, minimum=2.0), outcome("t2", 6.0, minimum=2.0)))
    assert result.together.seconds == 6.0
    assert result.ratio_to_alone == 1.5
    assert [result.tenant_ratio_to_alone(t) for t in result.together.tenants] == [1.25, 1.5]
    assert result.ratio_to_minimum == 3.0
    assert result.complete


def test_a_tenant_short_of_its_share_leaves_time_to_n_unknown_and_fails_the_case() -> None:
    result = comparison(group(outcome("t1", 5.0), outcome("t2", None)))
    assert result.together.seconds is None
    assert result.ratio_to_alone is None
    assert not result.complete


def test_json_and_table_carry_every_tenant() -> None:
    result = comparison(group(outcome("t1", 5.0, minimum=2.0), outcome("t2", 6.0, minimum=2.0)))
    report = BenchReport(command="provisioner bench --tenants 2", machine="test")
    report.tenant_runs.append(result)
    data = json.loads(json.dumps(report.to_json()))
    case = data["tenant_runs"][0]
    assert (case["tenants"], case["runners"], case["seconds"]) == (2, 40, 6.0)
    assert case["ratio_to_alone"] == 1.5
    assert case["together"]["minimum"] == {"seconds": 2.0, "bound_by": "points a minute"}
    tenants = case["together"]["tenants"]
    assert [t["ratio_to_alone"] for t in tenants] == [1.25, 1.5]
    assert tenants[0]["budget_left_at_n"] == 4980 and tenants[0]["answered_429"] == 1
    assert case["alone"]["tenants"][0]["seconds"] == 4.0

    out = io.StringIO()
    report.print_table(Console(file=out, width=200))
    text = out.getvalue()
    for expected in ("alone", "t1", "t2", "all", "1.50x", "3.00x", "4980/5000", "points a"):
        assert expected in text
