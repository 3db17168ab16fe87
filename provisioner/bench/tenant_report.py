"""Results of the `--tenants K` case: per tenant and for all, against one tenant alone and, with
limits set in the simulator, against the least time GitHub's limits allow."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rich.table import Table

from provisioner.bench.report import Leaks
from provisioner.bench.tenants import MinimumTime


@dataclass(frozen=True)
class TenantOutcome:
    """One tenant's scale set, organisation and credential (its non-secret key) in one run."""

    scale_set: str
    organisation: str
    credential: str
    runners: int
    created: int
    # From the scale request until its share of runners existed (None: not within the timeout).
    seconds: float | None
    github_calls: int
    # Refusals of its calls, by status: secondary limits (and the registration cap) answer 429,
    # primary ones 403.
    answered_429: int
    answered_403: int
    # Its primary budget (GET /rate_limit): the limit, what was left when every tenant had its
    # share (time to N), and after scaling back to 0.
    budget_limit: int
    budget_left_at_n: int
    budget_left_at_end: int
    leaks: Leaks
    minimum: MinimumTime | None = None

    @property
    def ratio_to_minimum(self) -> float | None:
        if self.seconds is None or self.minimum is None or self.minimum.seconds <= 0:
            return None
        return self.seconds / self.minimum.seconds


@dataclass(frozen=True)
class TenantGroupRun:
    """K tenants scaled at once (K = 1: one tenant alone)."""

    tenants: list[TenantOutcome]
    # GitHub's refusals over the run, scale-down included, from the simulator's counters.
    secondary_rate_limited: int
    primary_rate_limited: int
    registrations_capped: int

    @property
    def runners(self) -> int:
        return sum(tenant.runners for tenant in self.tenants)

    @property
    def created(self) -> int:
        return sum(tenant.created for tenant in self.tenants)

    @property
    def seconds(self) -> float | None:
        """Time to N: until every tenant had its share."""
        times = [tenant.seconds for tenant in self.tenants]
        return None if None in times else max(t for t in times if t is not None)

    @property
    def minimum(self) -> MinimumTime | None:
        found = [tenant.minimum for tenant in self.tenants if tenant.minimum is not None]
        return max(found, key=lambda minimum: minimum.seconds) if found else None

    @property
    def leaks(self) -> int:
        return sum(tenant.leaks.total for tenant in self.tenants)

    @property
    def complete(self) -> bool:
        return self.created >= self.runners and self.leaks == 0


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom <= 0:
        return None
    return top / bottom


@dataclass(frozen=True)
class TenantComparison:
    """One `--tenants` case: the K tenants together, and one tenant alone with the largest
    share before them (the same run when K = 1)."""

    runners: int
    tenants: int
    concurrency: int
    github_latency_ms: float
    github_profile: str
    alone: TenantGroupRun
    together: TenantGroupRun

    @property
    def ratio_to_alone(self) -> float | None:
        return _ratio(self.together.seconds, self.alone.seconds)

    def tenant_ratio_to_alone(self, tenant: TenantOutcome) -> float | None:
        return _ratio(tenant.seconds, self.alone.seconds)

    @property
    def ratio_to_minimum(self) -> float | None:
        minimum = self.together.minimum
        return None if minimum is None else _ratio(self.together.seconds, minimum.seconds)

    @property
    def complete(self) -> bool:
        return self.alone.complete and self.together.complete

    def to_json(self) -> dict:
        def tenant(outcome: TenantOutcome) -> dict:
            return {
                **asdict(outcome),
                "ratio_to_alone": self.tenant_ratio_to_alone(outcome),
                "ratio_to_minimum": outcome.ratio_to_minimum,
            }

        def group(run: TenantGroupRun) -> dict:
            minimum = run.minimum
            return {
                "runners": run.runners,
                "created": run.created,
                "seconds": run.seconds,
                "minimum": None if minimum is None else asdict(minimum),
                "secondary_rate_limited": run.secondary_rate_limited,
                "primary_rate_limited": run.primary_rate_limited,
                "registrations_capped": run.registrations_capped,
                "leaks": run.leaks,
                "tenants": [tenant(outcome) for outcome in run.tenants],
            }

        return {
            "runners": self.runners,
            "tenants": self.tenants,
            "concurrency": self.concurrency,
            "github_latency_ms": self.github_latency_ms,
            "github_profile": self.github_profile,
            "seconds": self.together.seconds,
            "ratio_to_alone": self.ratio_to_alone,
            "ratio_to_minimum": self.ratio_to_minimum,
            "alone": group(self.alone),
            "together": group(self.together),
        }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def tenants_table(comparisons: list[TenantComparison]) -> Table:
    """A row per tenant, one for all of them and one for a tenant alone, per case."""
    table = Table(title="tenants: K scale sets, each in its own organisation with its own token")
    columns = (
        ("case", "left"),
        ("tenant", "left"),
        ("credential", "left"),
        ("runners", "right"),
        ("seconds", "right"),
        ("x alone", "right"),
        ("minimum s", "right"),
        ("bound by", "left"),
        ("x minimum", "right"),
        ("429s", "right"),
        ("403s", "right"),
        ("budget left", "right"),
        ("leaks", "right"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for comparison in comparisons:
        case = f"K={comparison.tenants} N={comparison.runners} c={comparison.concurrency}"
        rows = [("alone", comparison.alone.tenants[0])] if comparison.tenants > 1 else []
        rows += [(f"t{index}", t) for index, t in enumerate(comparison.together.tenants, 1)]
        for label, outcome in rows:
            table.add_row(
                case,
                label,
                outcome.credential,
                f"{outcome.created}/{outcome.runners}",
                _seconds(outcome.seconds),
                _times(comparison.tenant_ratio_to_alone(outcome)),
                _seconds(outcome.minimum.seconds if outcome.minimum else None),
                outcome.minimum.bound_by if outcome.minimum else "-",
                _times(outcome.ratio_to_minimum),
                str(outcome.answered_429),
                str(outcome.answered_403),
                f"{outcome.budget_left_at_n}/{outcome.budget_limit}",
                str(outcome.leaks.total),
            )
            case = ""
        together = comparison.together
        minimum = together.minimum
        table.add_row(
            "",
            "[bold]all[/bold]",
            f"{len(together.tenants)} tokens",
            f"{together.created}/{together.runners}",
            f"[bold]{_seconds(together.seconds)}[/bold]",
            _times(comparison.ratio_to_alone),
            _seconds(minimum.seconds if minimum else None),
            minimum.bound_by if minimum else "-",
            _times(comparison.ratio_to_minimum),
            str(sum(t.answered_429 for t in together.tenants)),
            str(sum(t.answered_403 for t in together.tenants)),
            "",
            str(together.leaks),
            end_section=True,
        )
    return table
