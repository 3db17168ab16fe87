"""What to create and what to delete. Pure: the reconciler feeds it what it observed (pods,
GitHub registrations, the ledger) and acts on the answer."""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass

NAME_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
NAME_SUFFIX_LENGTH = 5


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


def runner_names(prefix: str, count: int, rng: random.Random) -> list[str]:
    """``count`` distinct names ``<prefix>-<5 of [a-z0-9]>``; the same rng state gives the
    same names."""
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = f"{prefix}-{''.join(rng.choices(NAME_SUFFIX_ALPHABET, k=NAME_SUFFIX_LENGTH))}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names
