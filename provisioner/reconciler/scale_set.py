"""One reconciliation of one RunnerScaleSet: observe pods and the ledger, clean up finished
runners, plan the missing ones (or the ones to remove), hand them on, report the status.

Every write a leader makes (the ledger, the dispatch, removals, the status) is preceded by the
fence, so a reconciler that lost its Lease mid-pass stops before its next write."""

from __future__ import annotations

import datetime
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kubernetes import client as k8s

from provisioner.failure_budget import CREATION_FAILURES, START_FAILURES, FailureBudget
from provisioner.github import Runner
from provisioner.github.client import PAGE_SIZE
from provisioner.github.errors import GitHubError
from provisioner.github.hosts import HostNotAllowed
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.errors import KubeNotFound, kube_errors
from provisioner.kube.pod_cache import RunnerPodCache
from provisioner.kube.runner_objects import RunnerPod
from provisioner.kube.scaleset import GitHubSecretError, ScaleSet, ScaleSetSpecError
from provisioner.ledger import BatchProgress, LedgerEntry
from provisioner.naming import runner_names
from provisioner.planner import (
    CALLS_PER_RUNNER,
    clamp_desired,
    plan_cancellations,
    plan_created_runners,
    plan_creations,
    plan_scale_down,
    plan_scale_up,
    plan_within_budget,
)
from provisioner.reconciler.dispatch import Dispatcher, Fence
from provisioner.reconciler.finalizer import Finalizer
from provisioner.reconciler.removal import RemovalResult, RunnerRemover
from provisioner.reconciler.status_report import (
    ObservedStatus,
    report_blocked,
    report_invalid,
    report_observed,
)
from provisioner.runtime import Runtime
from provisioner.runtime.credentials import CredentialView
from provisioner.runtime.github_access import RECHECK_REJECTED_SECONDS
from provisioner.runtime.limits import CredentialLimits
from provisioner.runtime.queue import visibility_timeout
from provisioner.runtime.registrations import owned
from provisioner.scale_down_lookups import (
    RegistrationState,
    listing_pages,
    next_lookup,
    runner_views,
)

log = logging.getLogger(__name__)

# How soon to look again at a scale set whose credential GitHub holds back, or whose Secret
# cannot be read: no event may come when the wait ends or the Secret is fixed.
THROTTLED_RECHECK_SECONDS = 10.0
SECRET_RECHECK_SECONDS = 30.0
PROBE_RECHECK_SECONDS = 0.2
# How soon to plan again a batch that could not be enqueued (Redis away, most likely).
NOT_ENQUEUED_RECHECK_SECONDS = 5.0
# A runner created this long ago whose Pod the watch has not shown is asked for by name (at
# most so many a pass): its Pod may have come and gone while the watch was starting again.
CREATED_UNSEEN_SECONDS = 30.0
CREATED_CONFIRMATIONS_PER_PASS = 10


@dataclass(frozen=True)
class Observation:
    desired: int
    live: list[str]  # runner pods not finished, oldest first
    ready: int
    pending: int
    # Runners planned or created with no pod seen yet. A created one (``created_at`` set) is
    # never cancelled: it exists.
    in_flight: list[LedgerEntry]
    # Seconds until removals left for later may go (None: none were).
    removals_wait: float | None = None


def _no_fence() -> None:
    return None


def _no_requeue(key: str, delay: float) -> None:
    return None


class ScaleSetReconciler:
    def __init__(
        self,
        runtime: Runtime,
        dispatcher: Dispatcher,
        fence: Fence = _no_fence,
        rng: random.Random | None = None,
        requeue: Callable[[str, float], None] = _no_requeue,
        pod_cache: RunnerPodCache | None = None,
    ):
        """``requeue(key, delay)``: look at the scale set again after ``delay`` seconds (a
        pass started for a reason found after it returned). ``pod_cache``: the runner pods
        as a watch sees them, counted instead of listing them each pass."""
        self.runtime = runtime
        self.pod_cache = pod_cache
        self.settings = runtime.settings
        self.dispatcher = dispatcher
        self.fence = fence
        self.requeue = requeue
        self.rng = rng or random.Random()
        self.custom = k8s.CustomObjectsApi(runtime.api)
        self.remover = RunnerRemover(runtime)
        self.finalizer = Finalizer(runtime, self.remover)
        self.start_failures = FailureBudget(runtime.redis, START_FAILURES)
        self.creation_failures = FailureBudget(runtime.redis, CREATION_FAILURES)

    def reconcile(self, namespace: str, name: str) -> float | None:
        """One pass; returns the seconds after which to look again (a backoff ending), if
        nothing else would trigger it."""
        try:
            with kube_errors(f"read RunnerScaleSet {namespace}/{name}"):
                obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name
                )
        except KubeNotFound:
            return None
        self.fence()
        if obj["metadata"].get("deletionTimestamp"):
            return self.finalizer.finalize(obj)
        self.finalizer.ensure(obj)
        try:
            scale_set = ScaleSet.from_object(obj)
        except ScaleSetSpecError as exc:
            report_invalid(self.runtime.api, namespace, name, exc)
            return None
        try:
            self.runtime.github.api_url(scale_set)
            credential = self.runtime.github.credential(scale_set)
        except HostNotAllowed as exc:
            report_blocked(self.runtime.api, scale_set, "GitHubHostNotAllowed", str(exc))
            return None
        except GitHubSecretError as exc:
            report_blocked(self.runtime.api, scale_set, "GitHubSecretUnusable", str(exc))
            return SECRET_RECHECK_SECONDS
        rejected = self.runtime.limits.records.rejected(credential.identity)
        if rejected:
            # Nothing is created with a credential GitHub rejects; it is probed again once
            # the recheck ends, so a fixed Secret is used within a minute.
            report_blocked(self.runtime.api, scale_set, "GitHubCredentialsRejected", rejected)
            return RECHECK_REJECTED_SECONDS
        observation = self._observe(scale_set, clean=True)
        missing = plan_scale_up(
            observation.desired, len(observation.live), len(observation.in_flight)
        )
        draining = 0
        requeue_after = None
        # Also while a batch waits in the queue (nothing missing, all in flight): that is when
        # a user asks why the scale-up is slow.
        throttled = (
            self._throttled(
                scale_set,
                credential,
                missing,
                len(observation.in_flight),
                len(observation.live),
            )
            if missing > 0 or observation.in_flight
            else None
        )
        if throttled is not None:
            missing = throttled[0]
            log.warning("%s: %s", scale_set.key, throttled[2])
            requeue_after = THROTTLED_RECHECK_SECONDS
        if missing > 0:
            wait = max(
                self.start_failures.backoff_remaining(scale_set.key),
                self.creation_failures.backoff_remaining(scale_set.key),
            )
            if wait > 0:
                log.warning(
                    "%s: %d runners missing, but recent ones failed; next creations in %.1fs",
                    scale_set.key,
                    missing,
                    wait,
                )
                requeue_after = wait
            else:
                failing = bool(self.creation_failures.describe(scale_set.key))
                entries = self._plan_and_dispatch(scale_set, plan_creations(missing, failing))
                if failing:
                    # One probe at a time: look again soon, not only when a Pod or the
                    # status changes, so a fixed cause brings the rest within seconds.
                    requeue_after = _soonest([requeue_after, PROBE_RECHECK_SECONDS])
                if self.dispatcher.synchronous:
                    observation = self._observe(scale_set)
                else:
                    observation = replace(observation, in_flight=[*observation.in_flight, *entries])
        elif len(observation.live) + len(observation.in_flight) > observation.desired:
            observation = self._cancel_planned(observation)
            draining, removals_wait = self._scale_down(scale_set, observation)
            observation = replace(
                observation, removals_wait=_soonest([observation.removals_wait, removals_wait])
            )
        requeue_after = _soonest([requeue_after, observation.removals_wait])
        self.fence()
        report_observed(
            self.runtime.api,
            scale_set,
            ObservedStatus(
                desired=observation.desired,
                live=len(observation.live),
                ready=observation.ready,
                pending=observation.pending,
                in_flight=len(observation.in_flight),
                draining=draining,
                failing_to_start=self.start_failures.describe(scale_set.key),
                failing_creations=self.creation_failures.describe(scale_set.key),
                throttled=throttled[1:] if throttled is not None else None,
            ),
        )
        return requeue_after

    def _throttled(
        self,
        scale_set: ScaleSet,
        credential: CredentialLimits,
        missing: int,
        in_flight: int,
        live: int,
    ) -> tuple[int, str, str] | None:
        """How many of ``missing`` runners GitHub's limits of the scale set's credential let
        it create now, and why not all (Throttled's reason and message); None when they do
        not hold it back."""
        who = f"credential {credential.identity} (Secret {scale_set.namespace}/"
        who += f"{scale_set.github_config_secret})"
        paused = credential.paused_for()
        if paused > 0:
            return (
                0 if paused > THROTTLED_RECHECK_SECONDS else missing,
                "CredentialPaused",
                f"GitHub asked {who} to wait {paused:.0f}s more",
            )
        view = self._budget(scale_set, credential)
        remaining = view.remaining if view.reset and view.reset > time.time() else None
        reserve = self.settings.github_budget_reserve
        allowed = plan_within_budget(missing, remaining, reserve, in_flight, live)
        if allowed >= missing or remaining is None or view.reset is None:
            return None
        resets = datetime.datetime.fromtimestamp(view.reset, datetime.UTC)
        return (
            allowed,
            "PrimaryBudgetLow",
            f"{who} has {remaining} of {view.limit} GitHub calls left until "
            f"{resets:%H:%M:%SZ}; creating {allowed} of {missing} missing runners and "
            f"keeping {reserve + live + in_flight * CALLS_PER_RUNNER} calls to remove runners",
        )

    def _budget(self, scale_set: ScaleSet, credential: CredentialLimits) -> CredentialView:
        """The credential's primary budget as GitHub last reported it. When nothing current
        is known, GitHub is asked first: a batch planned blind could spend the calls its own
        removals need, leaving registrations nothing can delete until the budget resets."""
        records = self.runtime.limits.records
        view = records.view(credential.identity)
        if view.reset is not None and view.reset > time.time():
            return view
        try:
            # Every authenticated answer reports the budget; a lookup by name is one call.
            self.runtime.registrations.find(scale_set, scale_set.runner_name_prefix)
        except GitHubError as exc:
            # A refusal for the budget reported it too; an outage leaves it unknown, and the
            # creations meet the outage themselves.
            log.info(
                "%s: GitHub did not report the budget of its credential (%s)", scale_set.key, exc
            )
        return records.view(credential.identity)

    # Observation.

    def _observe(self, scale_set: ScaleSet, clean: bool = False) -> Observation:
        # The ledger is read before the pods: a runner whose pod appears in between is then
        # seen in both and counted once (by name), never in neither. Its entry stays until
        # its pod is seen, so pods that lag (a watch's) count it in flight meanwhile.
        entries = self.runtime.ledger.in_flight(scale_set.key, time.time())
        pods = self._pods(scale_set)
        entries = self._settle_created(scale_set, entries, {p.name for p in pods})
        removals_wait = self._clean_up(scale_set, pods) if clean else None
        # A terminating pod is on its way out: not counted, so its replacement is planned now.
        live = [p for p in pods if p.state in ("pending", "running") and not p.deleting]
        live.sort(key=lambda p: (p.created, p.name))
        live_names = [p.name for p in live]
        known = set(live_names)
        return Observation(
            desired=clamp_desired(scale_set.replicas, scale_set.min_runners, scale_set.max_runners),
            live=live_names,
            ready=sum(1 for p in live if p.state == "running"),
            pending=sum(1 for p in live if p.state == "pending"),
            in_flight=[e for e in entries if e.name not in known],
            removals_wait=removals_wait,
        )

    def _pods(self, scale_set: ScaleSet) -> list[RunnerPod]:
        """The scale set's runner pods: from the watch once it has listed them, else listed."""
        if self.pod_cache is not None:
            cached = self.pod_cache.pods(scale_set.namespace, scale_set.name)
            if cached is not None:
                return cached
        return self.runtime.objects(scale_set).observe_runner_pods(scale_set.name)

    def _settle_created(
        self, scale_set: ScaleSet, entries: list[LedgerEntry], observed: set[str]
    ) -> list[LedgerEntry]:
        """Drop the ledger entries of created runners whose pods were observed (or are gone
        for sure); the entries left in flight."""
        created = {e.name: e.created_at for e in entries if e.created_at is not None}
        if not created:
            return entries
        plan = plan_created_runners(
            created, observed, time.time(), CREATED_UNSEEN_SECONDS, CREATED_CONFIRMATIONS_PER_PASS
        )
        objects = self.runtime.objects(scale_set)
        gone = {name for name in plan.to_confirm if objects.pod_owner(name) is None}
        done = set(plan.seen) | gone
        if not done:
            return entries
        self.fence()
        self.runtime.ledger.remove([e for e in entries if e.name in done])
        return [e for e in entries if e.name not in done]

    def _clean_up(self, scale_set: ScaleSet, pods: list[RunnerPod]) -> float | None:
        """Remove runners whose pods finished or never started (they are not live); the
        seconds until those left for later may go."""
        finished = [p.name for p in pods if p.state == "finished"]
        failed = [p for p in pods if p.state == "failed_to_start"]
        waits = []
        if finished:
            # The runner ran its one job; GitHub drops an ephemeral runner's registration
            # itself, and the removal confirms it is gone.
            waits.append(self._remove(scale_set, finished, "finished").retry_after)
        if failed:
            self.fence()
            for pod in failed:
                self.start_failures.record(scale_set.key, pod.start_failure)
            result = self._remove(scale_set, [p.name for p in failed], "failed_to_start")
            waits.append(result.retry_after)
        return _soonest(waits)

    def _remove(
        self,
        scale_set: ScaleSet,
        names: list[str],
        why: str,
        registered: Mapping[str, Runner] | None = None,
    ) -> RemovalResult:
        self.fence()
        result = self.remover.remove(scale_set, names, why, registered)
        if self.pod_cache is not None and result.removed:
            # Gone now: the next pass must not count them while the watch catches up.
            self.pod_cache.deleted(scale_set.namespace, scale_set.name, result.removed)
        return result

    # Scale up.

    def _plan_and_dispatch(self, scale_set: ScaleSet, count: int) -> list[LedgerEntry]:
        batch_id = uuid.uuid4().hex[:12]
        # Long enough for the whole batch to pass through the creation budget, and for a
        # killed worker's tasks to be delivered again; past it the runner is planned anew.
        rounds = -(-count // self.settings.runner_creation_concurrency)
        deadline = (
            time.time()
            + visibility_timeout(self.settings)
            + rounds * self.settings.runner_creation_timeout
        )
        entries = [
            LedgerEntry(scale_set.key, name, batch_id, deadline, owner_uid=scale_set.uid)
            for name in runner_names(scale_set.runner_name_prefix, count, self.rng)
        ]
        self.fence()
        self.runtime.ledger.record(entries)
        BatchProgress(self.runtime.redis).start(batch_id, scale_set.key, len(entries))
        log.info("%s: planned %d runners (batch %s)", scale_set.key, count, batch_id)

        def not_enqueued(error: Exception) -> None:
            # Forget the plan so that a pass soon makes it again (left in the ledger, the
            # runners would count as in flight until their deadline).
            try:
                self.runtime.ledger.remove(entries)
            except Exception as exc:
                log.warning(
                    "%s: batch %s stays planned until its deadline: %s",
                    scale_set.key,
                    batch_id,
                    exc,
                )
            self.requeue(scale_set.key, NOT_ENQUEUED_RECHECK_SECONDS)

        self.dispatcher.dispatch(scale_set, batch_id, entries, self.fence, not_enqueued)
        return entries

    # Scale down.

    def _cancel_planned(self, observation: Observation) -> Observation:
        """Take back planned runners before removing live ones: a task not yet started then
        finds its ledger entry gone and creates nothing; one under way rolls back."""
        planned = {e.name: e.deadline for e in observation.in_flight if e.created_at is None}
        created = len(observation.in_flight) - len(planned)
        cancel = set(
            plan_cancellations(planned, len(observation.live) + created, observation.desired)
        )
        if not cancel:
            return observation
        self.fence()
        self.runtime.ledger.remove([e for e in observation.in_flight if e.name in cancel])
        log.info(
            "%s: cancelled %d planned runners", observation.in_flight[0].scale_set, len(cancel)
        )
        return replace(
            observation, in_flight=[e for e in observation.in_flight if e.name not in cancel]
        )

    def _scale_down(
        self, scale_set: ScaleSet, observation: Observation
    ) -> tuple[int, float | None]:
        """Remove idle runners beyond desired, newest first; the number left draining, and
        the seconds until removals left for later may go."""
        target = max(0, observation.desired - len(observation.in_flight))
        if len(observation.live) <= target:
            return 0, None
        known = self._registrations(scale_set, observation.live, len(observation.live) - target)
        plan = plan_scale_down(target, runner_views(observation.live, _states(known)))
        if not plan.remove:
            return plan.draining, None
        registered = {name: runner for name, runner in known.items() if runner is not None}
        result = self._remove(scale_set, list(plan.remove), "scale_down", registered)
        return plan.draining + len(result.busy) + len(result.deferred), result.retry_after

    def _registrations(
        self, scale_set: ScaleSet, live: list[str], excess: int
    ) -> dict[str, Runner | None]:
        """The scale set's registrations of live runners (oldest first), by name (None: it
        has none by that name), for enough of them to find ``excess`` that may go: a few are
        asked about by name, in waves, while that costs no more calls than listing the scope
        (see provisioner.scale_down_lookups)."""
        registrations = self.runtime.registrations
        pages = listing_pages(registrations.last_total(scale_set), len(live), PAGE_SIZE)
        known: dict[str, Runner | None] = {}
        while True:
            step = next_lookup(
                live, excess, _states(known), pages, self.settings.runner_creation_concurrency
            )
            if step.list_scope:
                return self._listed(scale_set, live, known)
            if not step.ask:
                return known
            known.update(self._find_each(scale_set, step.ask))

    def _listed(
        self, scale_set: ScaleSet, live: list[str], asked: dict[str, Runner | None]
    ) -> dict[str, Runner | None]:
        """The registrations of every live runner. One listing serves most; a runner it misses
        (its pages shift while ephemeral runners deregister) is asked about by name unless it
        was just now, so a busy runner is never taken for an unregistered one."""
        listed = {
            r.name: r
            for r in self.runtime.registrations.list(scale_set)
            if owned(r, scale_set, unlabelled_is_ours=True)
        }
        known = {**asked, **{name: listed[name] for name in live if name in listed}}
        missing = [name for name in live if name not in known]
        known.update(self._find_each(scale_set, missing))
        return known

    def _find_each(self, scale_set: ScaleSet, names: Sequence[str]) -> dict[str, Runner | None]:
        """The scale set's registration of each name (None: it has none by that name)."""
        found = self.runtime.registrations.find_each(scale_set, names)
        return {name: _if_owned(runner, scale_set) for name, runner in found.items()}


def _if_owned(runner: Runner | None, scale_set: ScaleSet) -> Runner | None:
    if runner is not None and owned(runner, scale_set, unlabelled_is_ours=True):
        return runner
    return None


def _states(known: Mapping[str, Runner | None]) -> dict[str, RegistrationState]:
    return {name: _state(runner) for name, runner in known.items()}


def _state(registration: Runner | None) -> RegistrationState:
    if registration is None:
        return RegistrationState.ABSENT
    return RegistrationState.BUSY if registration.busy else RegistrationState.IDLE


def _soonest(waits: list[float | None]) -> float | None:
    """The shortest of the waits given, None when there is none."""
    known = [wait for wait in waits if wait is not None]
    return min(known) if known else None
