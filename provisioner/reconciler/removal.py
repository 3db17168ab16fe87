"""Removing runners: the GitHub registration first (so no job can be given to a runner that is
about to vanish, and a busy runner is refused by GitHub), then its Pod and Secret."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from provisioner import metrics
from provisioner.github.errors import NotFound, RunnerBusy
from provisioner.kube.scaleset import ScaleSet
from workers.context import WorkerContext

log = logging.getLogger(__name__)


@dataclass
class RemovalResult:
    removed: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class RunnerRemover:
    def __init__(self, context: WorkerContext):
        self.context = context

    def remove(
        self,
        scale_set: ScaleSet,
        names: list[str],
        why: str,
        runner_ids: dict[str, int] | None = None,
    ) -> RemovalResult:
        """Remove ``names``. ``runner_ids`` (name -> GitHub id, from a list the caller already
        made) saves a lookup per runner: a name missing from it has no registration. Without
        it, each runner is looked up by name."""
        result = RemovalResult()
        scope = self.context.scope(scale_set)
        # One removal is a GitHub round trip or two: done side by side, as many at once as
        # creations may talk to GitHub, so scaling 500 runners down does not take minutes.
        workers = max(1, min(len(names), self.context.settings.runner_creation_concurrency))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remove") as pool:
            outcomes = pool.map(
                lambda name: self._remove_one(scale_set, scope, name, why, runner_ids), names
            )
            for name, outcome in zip(names, outcomes, strict=True):
                getattr(result, outcome).append(name)
        return result

    def _remove_one(self, scale_set, scope, name: str, why: str, runner_ids) -> str:
        """ "removed", "busy" or "failed"."""
        ctx = self.context
        try:
            runner_id = (runner_ids or {}).get(name)
            if runner_id is None and runner_ids is None:
                runner = ctx.github_request(scale_set, lambda c: c.find_runner_by_name(scope, name))
                runner_id = runner.id if runner is not None else None
            if runner_id is not None:
                ctx.github_token(timeout=30)
                ctx.github_request(scale_set, lambda c: c.delete_runner(scope, runner_id))
        except NotFound:
            pass
        except RunnerBusy:
            return "busy"
        except Exception as exc:
            log.warning("runner %s: could not remove its registration: %s", name, exc)
            return "failed"
        try:
            ctx.objects(scale_set).delete_runner_objects(name)
        except Exception as exc:
            log.warning("runner %s: could not delete its Pod/Secret: %s", name, exc)
            return "failed"
        log.info("runner %s removed (%s)", name, why)
        metrics.RUNNERS_REMOVED.labels(scale_set=scale_set.key, why=why).inc()
        return "removed"
