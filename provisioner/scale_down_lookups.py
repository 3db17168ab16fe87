"""Which live runners to ask GitHub about before a scale-down, and how. Pure: the reconciler
feeds it what it has learnt so far and asks again until it is told to stop.

A scale-down must know which runners are busy (never removed) and which are idle or not
registered. A listing of the scope answers for all of them but costs a call per page, and a
scope holds every scale set's runners: removing 5 runners from an organisation of 10,000
would cost 100 calls. Asking about one runner by name costs one call. So runners are asked
about by name, newest first (the newest idle ones are the ones removed), while that costs no
more calls than the listing; otherwise the scope is listed. Only runners GitHub answered for
may be removed."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from provisioner.planner import RunnerView


class RegistrationState(enum.Enum):
    BUSY = "busy"  # running a job: never removed
    IDLE = "idle"
    ABSENT = "absent"  # no registration of the scale set's by that name


@dataclass(frozen=True)
class LookupStep:
    """What to do next: list the scope, or ask GitHub about ``ask`` by name. Neither: what is
    known is enough to plan the scale-down."""

    list_scope: bool = False
    ask: tuple[str, ...] = ()


def listing_pages(scope_total: int | None, live: int, page_size: int) -> int:
    """The calls a listing of the scope would take. ``scope_total``: its registrations at
    the last listing (None: not listed yet); the scale set's own ``live`` runners are in the
    scope too, a lower bound whatever was seen."""
    return max(1, -(-max(scope_total or 0, live) // page_size))


def next_lookup(
    live: Sequence[str],
    excess: int,
    known: Mapping[str, RegistrationState],
    pages: int,
    concurrency: int,
) -> LookupStep:
    """The next step towards ``excess`` runners that may go among ``live`` (oldest first),
    given what GitHub said of those in ``known``. Asked about: the newest not asked yet, no
    more than are still needed and ``concurrency`` at once. Listed instead: the scope, once
    the lookups made and those still needed at the least would cost more calls than its
    ``pages`` (so busy runners met on the way cannot make the lookups cost more than a
    listing)."""
    asked = sum(1 for name in live if name in known)
    removable = sum(
        1 for name in live if known.get(name, RegistrationState.BUSY) is not RegistrationState.BUSY
    )
    needed = excess - removable
    not_asked = [name for name in reversed(live) if name not in known]
    if needed <= 0 or not not_asked:
        return LookupStep()
    if asked + min(needed, len(not_asked)) > pages:
        return LookupStep(list_scope=True)
    return LookupStep(ask=tuple(not_asked[: min(needed, concurrency)]))


def runner_views(live: Sequence[str], known: Mapping[str, RegistrationState]) -> list[RunnerView]:
    """The planner's view of ``live`` runners (oldest first). A runner GitHub was not asked
    about is taken for busy: it may be, and a busy runner must never be removed."""
    views = []
    for rank, name in enumerate(live):
        state = known.get(name, RegistrationState.BUSY)
        views.append(
            RunnerView(
                name=name,
                created_at=rank,
                busy=state is RegistrationState.BUSY,
                registered=state is not RegistrationState.ABSENT,
            )
        )
    return views
