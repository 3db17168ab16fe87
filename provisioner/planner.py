"""What to create and what to delete. Pure: the reconciler feeds it what it observed (pods,
GitHub registrations, the ledger) and acts on the answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RunnerView:
    """One live runner as the planner needs to see it. ``created_at`` only has to order
    runners (a timestamp or a rank); ``registered`` is whether GitHub lists it."""

    name: str
    created_at: float
    busy: bool
    registered: bool


@dataclass(frozen=True)
class ScaleDownPlan:
    """Runners to remove now, and how many more should go but are busy running a job: they
    are left to finish (an ephemeral runner leaves by itself after its job)."""

    remove: tuple[str, ...]
    draining: int


def clamp_desired(replicas: int, min_runners: int, max_runners: int | None) -> int:
    """The runner count to aim for: ``replicas`` within [minRunners, maxRunners]."""
    if min_runners < 0:
        raise ValueError(f"minRunners must be 0 or more, got {min_runners}")
    if max_runners is not None and max_runners < min_runners:
        raise ValueError(f"maxRunners ({max_runners}) must not be below minRunners ({min_runners})")
    desired = max(min_runners, replicas)
    return desired if max_runners is None else min(max_runners, desired)


def plan_scale_up(desired: int, active_runners: int, in_flight: int) -> int:
    """How many runners to plan now: those neither running nor already being created."""
    return max(0, desired - active_runners - in_flight)


def plan_scale_down(desired: int, runners: Sequence[RunnerView]) -> ScaleDownPlan:
    """Which runners to remove to come down to ``desired``. Busy runners are never taken.
    Runners GitHub does not list go first (they can run no job), then idle ones, newest
    first: the oldest have been up longest and are the likeliest to get the next job."""
    excess = len(runners) - max(0, desired)
    if excess <= 0:
        return ScaleDownPlan(remove=(), draining=0)
    idle = sorted(
        (r for r in runners if not r.busy),
        key=lambda r: (r.registered, -r.created_at, r.name),
    )
    remove = tuple(r.name for r in idle[:excess])
    return ScaleDownPlan(remove=remove, draining=excess - len(remove))


def plan_cancellations(planned: Mapping[str, float], live: int, desired: int) -> list[str]:
    """Which planned runners (name -> planning deadline) to take back when live and planned
    together exceed ``desired``: the newest plans first, since they are the least likely to
    be under way. Taken back before any live runner is removed."""
    excess = live + len(planned) - max(0, desired)
    if excess <= 0:
        return []
    newest_first = sorted(planned, key=lambda name: (-planned[name], name))
    return newest_first[:excess]


@dataclass(frozen=True)
class CreatedRunners:
    """What to do with the ledger entries of runners whose creation succeeded: ``seen``
    (their Pod has been observed) leave the ledger; ``to_confirm`` (created a while ago and
    still not observed) are asked for by name, in case the Pod came and went unseen."""

    seen: tuple[str, ...]
    to_confirm: tuple[str, ...]


def plan_created_runners(
    created: Mapping[str, float], observed: set[str], now: float, unseen_after: float, limit: int
) -> CreatedRunners:
    """``created``: runner name -> when its creation succeeded; ``observed``: the names of
    the pods observed. At most ``limit`` are to be confirmed, the longest unseen first."""
    seen = tuple(sorted(name for name in created if name in observed))
    unseen = sorted(
        (when, name)
        for name, when in created.items()
        if name not in observed and now - when >= unseen_after
    )
    return CreatedRunners(seen=seen, to_confirm=tuple(name for _, name in unseen[:limit]))


def plan_creations(missing: int, failing: bool) -> int:
    """How many of ``missing`` runners to create now. While the scale set's own creations keep
    failing (its failure budget is spent and its backoff has run out), one runner probes
    whether the cause is fixed: a broken spec or credential costs a call per backoff, not a
    whole batch of them."""
    return min(missing, 1) if failing else missing


# GitHub calls a runner costs its credential at the least: generate-jitconfig to create it,
# a delete (or the lookup confirming it left) to remove it.
CALLS_PER_RUNNER = 2


def plan_within_budget(
    missing: int, remaining: int | None, reserve: int, in_flight: int, live: int
) -> int:
    """How many of ``missing`` runners the credential's remaining primary budget can create
    and later remove. Spoken for already: a removal call for each of the ``live`` runners,
    a creation and a removal for each creation ``in_flight``, and ``reserve`` calls besides
    (lookups, listings, other scale sets' removals). Unknown budget: no cap."""
    if remaining is None:
        return missing
    spendable = remaining - reserve - live - in_flight * CALLS_PER_RUNNER
    return max(0, min(missing, spendable // CALLS_PER_RUNNER))
