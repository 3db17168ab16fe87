"""Removing a runner's GitHub registration: the one way every path (rollback, conflict
recovery, scale-down, finished runners, deletion, garbage collection) does it.

A registration is removed only when it is the scale set's own (its owner label), or carries
no owner label at all while the caller owns the runner's other objects (a runner registered
before owner labels existed). Removals take GitHub request tokens but never a creation slot:
clean-up must not wait behind the creations it makes room for."""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from provisioner.github import GitHubScope, Runner
from provisioner.github.client import PAGE_SIZE
from provisioner.github.errors import NotFound
from provisioner.kube.scaleset import ScaleSet
from provisioner.naming import OWNER_LABEL_PREFIX, is_owned_by
from provisioner.runtime.github_access import GitHubAccess
from provisioner.runtime.limits import Limits

log = logging.getLogger(__name__)

TOKEN_WAIT_SECONDS = 30.0
# One page of a listing: its runners, and the scope's total_count as GitHub reported it.
RunnerPage = tuple[list[Runner], int]


class Removal(enum.Enum):
    REMOVED = "removed"  # deleted now, or there was no registration
    FOREIGN = "foreign"  # a registration of that name belongs to another scale set: untouched


def owned(runner: Runner, scale_set: ScaleSet, unlabelled_is_ours: bool) -> bool:
    """Whether ``runner`` is ``scale_set``'s to remove."""
    if is_owned_by(runner.labels, scale_set.uid):
        return True
    has_owner = any(label.lower().startswith(OWNER_LABEL_PREFIX) for label in runner.labels)
    return unlabelled_is_ours and not has_owner


@dataclass(frozen=True)
class ScopeView:
    """A registration scope as one credential sees it through one API URL: scale sets with
    the same view get the same listing of registrations."""

    api_url: str
    scope: GitHubScope
    credential: str  # the credential's identity (never the secret itself)


class Registrations:
    def __init__(self, github: GitHubAccess, limits: Limits) -> None:
        self.github = github
        self.limits = limits
        # The total_count of each scope's last listing: what the next one would cost.
        self._scope_totals: dict[GitHubScope, int] = {}

    def find(self, scale_set: ScaleSet, name: str) -> Runner | None:
        scope = self.github.scope(scale_set)
        self.limits.github_token(self.github.credential(scale_set), TOKEN_WAIT_SECONDS)
        return self.github.request(scale_set, lambda c: c.find_runner_by_name(scope, name))

    def view(self, scale_set: ScaleSet) -> ScopeView:
        """What the scale set's listing shows: its scope, seen with its credential."""
        return ScopeView(
            self.github.api_url(scale_set),
            self.github.scope(scale_set),
            self.github.credential(scale_set).identity,
        )

    def find_each(self, scale_set: ScaleSet, names: Sequence[str]) -> dict[str, Runner | None]:
        """``find`` of each name, side by side (as many at once as creations)."""
        with self._pool(len(names), "find") as pool:
            return dict(zip(names, pool.map(lambda n: self.find(scale_set, n), names), strict=True))

    def list(self, scale_set: ScaleSet) -> list[Runner]:
        """Every registration in the scale set's scope, whoever owns it. The first page tells
        how many there are, and the others are fetched side by side (as many at once as
        creations): 10,000 runners are 100 pages, half a minute one after another."""
        scope = self.github.scope(scale_set)
        first = self._page(scale_set, scope, 1)
        _, total = first
        self._scope_totals[scope] = total
        last_page = -(-total // PAGE_SIZE)
        with self._pool(last_page - 1, "list") as pool:
            rest = pool.map(
                lambda page: self._page(scale_set, scope, page), range(2, last_page + 1)
            )
            pages = [first, *rest]
        runners = [runner for page_runners, _ in pages for runner in page_runners]
        last_runners, last_total = pages[-1]
        # Registrations made while the pages were read may have filled the last page and
        # started another: walk on while the scope says there are more.
        while len(last_runners) == PAGE_SIZE and last_total > last_page * PAGE_SIZE:
            last_page += 1
            last_runners, last_total = self._page(scale_set, scope, last_page)
            runners.extend(last_runners)
        return runners

    def last_total(self, scale_set: ScaleSet) -> int | None:
        """How many registrations the scale set's scope had at its last listing (None: not
        listed since this process started)."""
        return self._scope_totals.get(self.github.scope(scale_set))

    def _page(self, scale_set: ScaleSet, scope: GitHubScope, page: int) -> RunnerPage:
        self.limits.github_token(self.github.credential(scale_set), TOKEN_WAIT_SECONDS)
        return self.github.request(scale_set, lambda c: c.list_runners_page(scope, page))

    def _pool(self, calls: int, name: str) -> ThreadPoolExecutor:
        concurrency = self.github.settings.runner_creation_concurrency
        return ThreadPoolExecutor(
            max_workers=max(1, min(calls, concurrency)), thread_name_prefix=name
        )

    def remove(
        self,
        scale_set: ScaleSet,
        name: str,
        runner: Runner | None = None,
        unlabelled_is_ours: bool = True,
        admit: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> Removal:
        """Remove the registration ``name`` (looked up unless ``runner`` is given).
        RunnerBusy when it is running a job; other GitHub errors propagate. ``admit()`` is
        entered right before the delete-runner call and left once it is over, only when a
        call is made; it may refuse by raising."""
        if runner is None:
            runner = self.find(scale_set, name)
            if runner is None:
                return Removal.REMOVED
        if not owned(runner, scale_set, unlabelled_is_ours):
            log.warning(
                "runner %s: its registration belongs to another scale set; left alone", name
            )
            return Removal.FOREIGN
        with admit():
            scope = self.github.scope(scale_set)
            self.limits.github_token(self.github.credential(scale_set), TOKEN_WAIT_SECONDS)
            # Gone already is fine: ephemeral runners deregister when their job ends.
            with contextlib.suppress(NotFound):
                self.github.request(scale_set, lambda c: c.delete_runner(scope, runner.id))
        return Removal.REMOVED
