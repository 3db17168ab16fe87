"""Removing runners: the GitHub registration first (so no job can be given to a runner that is
about to vanish, and a busy runner is refused by GitHub), then its Pod and Secret."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from provisioner import metrics
from provisioner.github.errors import GitHubError, NotFound, RunnerBusy
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
        """Remove ``names``; ``runner_ids`` (name -> GitHub id, from a list the caller already
        made) saves a lookup per runner. A runner missing from it is looked up by name."""
        ctx = self.context
        result = RemovalResult()
        scope = ctx.scope(scale_set)
        for name in names:
            try:
                runner_id = (runner_ids or {}).get(name)
                if runner_id is None and runner_ids is None:
                    runner = ctx.github_request(
                        scale_set, lambda c, n=name: c.find_runner_by_name(scope, n)
                    )
                    runner_id = runner.id if runner is not None else None
                if runner_id is not None:
                    ctx.github_token(timeout=30)
                    ctx.github_request(scale_set, lambda c, i=runner_id: c.delete_runner(scope, i))
            except NotFound:
                pass
            except RunnerBusy:
                result.busy.append(name)
                continue
            except (GitHubError, Exception) as exc:
                log.warning("runner %s: could not remove its registration: %s", name, exc)
                result.failed.append(name)
                continue
            try:
                ctx.objects(scale_set).delete_runner_objects(name)
            except Exception as exc:
                log.warning("runner %s: could not delete its Pod/Secret: %s", name, exc)
                result.failed.append(name)
                continue
            log.info("runner %s removed (%s)", name, why)
            metrics.RUNNERS_REMOVED.labels(scale_set=scale_set.key, why=why).inc()
            result.removed.append(name)
        return result
