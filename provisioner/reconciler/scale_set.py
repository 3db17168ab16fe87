"""One reconciliation of one RunnerScaleSet: observe pods and the ledger, clean up finished
runners, plan the missing ones (or the ones to remove), hand them on, report the status."""

from __future__ import annotations

import datetime
import logging
import random
import time
import uuid
from dataclasses import dataclass, replace

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from provisioner import metrics
from provisioner.failure_budget import CREATION_FAILURES, START_FAILURES, FailureBudget
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.runner_objects import runner_pod_state
from provisioner.kube.scaleset import ScaleSet, ScaleSetSpecError, with_condition
from provisioner.kube.status import update_status
from provisioner.ledger import BatchProgress, LedgerEntry
from provisioner.planner import (
    RunnerView,
    clamp_desired,
    plan_scale_down,
    plan_scale_up,
    runner_names,
)
from provisioner.reconciler.dispatch import Dispatcher
from provisioner.reconciler.removal import RunnerRemover
from workers.app import visibility_timeout
from workers.context import WorkerContext

log = logging.getLogger(__name__)

FINALIZER = "provisioner.dev/runners"
FINALIZE_RETRY_SECONDS = 5.0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Observation:
    desired: int
    live: list[str]  # runner pods not finished, oldest first
    ready: int
    pending: int
    in_flight: list[LedgerEntry]  # planned runners with no pod yet
    draining: int = 0


class ScaleSetReconciler:
    def __init__(
        self,
        context: WorkerContext,
        dispatcher: Dispatcher,
        rng: random.Random | None = None,
    ):
        self.context = context
        self.settings = context.settings
        self.dispatcher = dispatcher
        self.rng = rng or random.Random()
        self.custom = k8s.CustomObjectsApi(context.api)
        self.remover = RunnerRemover(context)
        self.start_failures = FailureBudget(context.redis, START_FAILURES)
        self.creation_failures = FailureBudget(context.redis, CREATION_FAILURES)

    def reconcile(self, namespace: str, name: str) -> float | None:
        """One pass; returns the seconds after which to look again (a backoff ending), if
        nothing else would trigger it."""
        try:
            obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if obj["metadata"].get("deletionTimestamp"):
            return self._finalize(obj)
        if FINALIZER not in (obj["metadata"].get("finalizers") or []):
            self._add_finalizer(obj)
        try:
            scale_set = ScaleSet.from_object(obj)
        except ScaleSetSpecError as exc:
            self._report_invalid(namespace, name, exc)
            return None
        observation = self._observe(scale_set, clean=True)
        missing = plan_scale_up(
            observation.desired, len(observation.live), len(observation.in_flight)
        )
        draining = 0
        requeue_after = None
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
                entries = self._plan_and_dispatch(scale_set, missing)
                if self.dispatcher.synchronous:
                    observation = self._observe(scale_set)
                else:
                    observation = replace(observation, in_flight=[*observation.in_flight, *entries])
        elif len(observation.live) + len(observation.in_flight) > observation.desired:
            observation = self._cancel_planned(observation)
            draining = self._scale_down(scale_set, observation)
        self._report(scale_set, observation, draining)
        return requeue_after

    # Observation.

    def _observe(self, scale_set: ScaleSet, clean: bool = False) -> Observation:
        # The ledger is read before the pods: a runner whose pod appears in between is then
        # seen in both and counted once (by name), never in neither.
        in_flight = self.context.ledger.in_flight(scale_set.key, time.time())
        pods = self.context.objects(scale_set).list_runner_pods(scale_set.name)
        if clean:
            self._clean_up(scale_set, pods)
        # A terminating pod is on its way out: not counted, so its replacement is planned now.
        live = [
            p
            for p in pods
            if runner_pod_state(p) in ("pending", "running") and not p.metadata.deletion_timestamp
        ]
        live.sort(key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
        live_names = [p.metadata.name for p in live]
        known = set(live_names)
        return Observation(
            desired=clamp_desired(scale_set.replicas, scale_set.min_runners, scale_set.max_runners),
            live=live_names,
            ready=sum(1 for p in live if runner_pod_state(p) == "running"),
            pending=sum(1 for p in live if runner_pod_state(p) == "pending"),
            in_flight=[e for e in in_flight if e.name not in known],
        )

    def _clean_up(self, scale_set: ScaleSet, pods: list) -> None:
        """Remove runners whose pods finished or never started (they are not live)."""
        finished = [p.metadata.name for p in pods if runner_pod_state(p) == "finished"]
        failed = [p for p in pods if runner_pod_state(p) == "failed_to_start"]
        if finished:
            # The runner ran its one job; GitHub drops an ephemeral runner's registration
            # itself, and the removal confirms it is gone.
            self.remover.remove(scale_set, finished, "finished")
        if failed:
            for pod in failed:
                self.start_failures.record(scale_set.key, _start_failure_reason(pod))
            self.remover.remove(scale_set, [p.metadata.name for p in failed], "failed_to_start")

    # Scale up.

    def _plan_and_dispatch(self, scale_set: ScaleSet, missing: int) -> list[LedgerEntry]:
        batch_id = uuid.uuid4().hex[:12]
        # Long enough for the whole batch to pass through the creation budget, and for a
        # killed worker's tasks to be delivered again; past it the runner is planned anew.
        rounds = -(-missing // self.settings.runner_creation_concurrency)
        deadline = (
            time.time()
            + visibility_timeout(self.settings)
            + rounds * self.settings.runner_creation_timeout
        )
        entries = [
            LedgerEntry(scale_set.key, name, batch_id, deadline)
            for name in runner_names(scale_set.runner_name_prefix, missing, self.rng)
        ]
        self.context.ledger.record(entries)
        BatchProgress(self.context.redis).start(batch_id, scale_set.key, len(entries))
        log.info("%s: planned %d runners (batch %s)", scale_set.key, missing, batch_id)
        try:
            self.dispatcher.dispatch(scale_set, batch_id, entries)
        except Exception:
            # Not enqueued: forget the plan so the next pass makes it again.
            self.context.ledger.remove(entries)
            raise
        return entries

    # Scale down.

    def _cancel_planned(self, observation: Observation) -> Observation:
        """Take back planned runners before removing live ones: a task not yet started then
        finds its ledger entry gone and creates nothing. One already under way still
        finishes; its runner is then an excess live runner, removed by a later pass."""
        excess = len(observation.live) + len(observation.in_flight) - observation.desired
        newest_first = sorted(observation.in_flight, key=lambda e: e.deadline, reverse=True)
        cancelled = newest_first[:excess]
        if not cancelled:
            return observation
        self.context.ledger.remove(cancelled)
        log.info("%s: cancelled %d planned runners", cancelled[0].scale_set, len(cancelled))
        return replace(observation, in_flight=newest_first[len(cancelled) :])

    def _scale_down(self, scale_set: ScaleSet, observation: Observation) -> int:
        """Remove idle runners beyond desired, newest first; the number left draining."""
        target = max(0, observation.desired - len(observation.in_flight))
        if len(observation.live) <= target:
            return 0
        scope = self.context.scope(scale_set)
        self.context.github_token(timeout=30)
        registered = {
            r.name: r
            for r in self.context.github_request(scale_set, lambda c: c.list_runners(scope))
        }
        order = {name: index for index, name in enumerate(observation.live)}
        views = [
            RunnerView(
                name=name,
                created_at=order[name],
                busy=bool(registered[name].busy) if name in registered else False,
                registered=name in registered,
            )
            for name in observation.live
        ]
        plan = plan_scale_down(target, views)
        if plan.remove:
            result = self.remover.remove(
                scale_set,
                list(plan.remove),
                "scale_down",
                runner_ids={n: registered[n].id for n in plan.remove if n in registered},
            )
            return plan.draining + len(result.busy)
        return plan.draining

    # Deletion.

    def _add_finalizer(self, obj: dict) -> None:
        finalizers = [*(obj["metadata"].get("finalizers") or []), FINALIZER]
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            obj["metadata"]["namespace"],
            PLURAL,
            obj["metadata"]["name"],
            _finalizers_patch(obj, finalizers),
        )

    def _finalize(self, obj: dict) -> float | None:
        """Remove every runner of a deleted scale set (registrations first), then let it go.
        While busy runners finish their jobs, look again in a few seconds."""
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        if FINALIZER not in (obj["metadata"].get("finalizers") or []):
            return None
        try:
            scale_set = ScaleSet.from_object(obj)
        except ScaleSetSpecError:
            scale_set = None
        if scale_set is not None:
            self.context.ledger.remove(
                self.context.ledger.in_flight(scale_set.key, time.time() + 365 * 86400)
            )
            pods = self.context.objects(scale_set).list_runner_pods(scale_set.name)
            secrets = self.context.objects(scale_set).list_runner_secrets(scale_set.name)
            names = sorted({p.metadata.name for p in pods} | {s.metadata.name for s in secrets})
            result = self.remover.remove(scale_set, names, "deleted_scale_set")
            if result.busy or result.failed:
                log.info(
                    "%s: deletion waits for %d busy and %d failed removals",
                    scale_set.key,
                    len(result.busy),
                    len(result.failed),
                )
                return FINALIZE_RETRY_SECONDS
        finalizers = [f for f in obj["metadata"]["finalizers"] if f != FINALIZER]
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            _finalizers_patch(obj, finalizers),
        )
        log.info("%s/%s: all runners removed; deletion can proceed", namespace, name)
        return None

    # Status.

    def _report_invalid(self, namespace: str, name: str, error: ScaleSetSpecError) -> None:
        now = _now()

        def change(status: dict) -> dict:
            status["conditions"] = with_condition(
                status.get("conditions") or [], "Degraded", "True", "InvalidSpec", str(error), now
            )
            status["conditions"] = with_condition(
                status["conditions"], "Ready", "False", "InvalidSpec", str(error), now
            )
            return status

        log.warning("%s/%s: %s", namespace, name, error)
        update_status(self.context.api, namespace, name, change)

    def _report(self, scale_set: ScaleSet, observation: Observation, draining: int) -> None:
        now = _now()
        metrics.SCALE_SET_DESIRED.labels(scale_set=scale_set.key).set(observation.desired)
        metrics.SCALE_SET_CURRENT.labels(scale_set=scale_set.key).set(len(observation.live))
        metrics.SCALE_SET_BUSY_DRAINING.labels(scale_set=scale_set.key).set(draining)
        failing = self.start_failures.describe(scale_set.key)

        def change(status: dict) -> dict:
            status.update(
                replicas=len(observation.live),
                readyRunners=observation.ready,
                pendingRunners=observation.pending,
                inFlight=len(observation.in_flight),
                drainingRunners=draining,
                selector=f"provisioner.dev/scale-set={scale_set.name}",
                observedGeneration=scale_set.generation,
            )
            conditions = status.get("conditions") or []
            creating = len(observation.in_flight)
            if creating:
                conditions = with_condition(
                    conditions,
                    "ScalingUp",
                    "True",
                    "CreatingRunners",
                    f"creating {creating} runners",
                    now,
                )
            at_size = len(observation.live) == observation.desired and not creating
            conditions = with_condition(
                conditions,
                "Ready",
                "True" if at_size else "False",
                "AtDesiredSize" if at_size else "Converging",
                f"{len(observation.live)}/{observation.desired} runners"
                + (f", {draining} busy runners draining" if draining else ""),
                now,
            )
            if failing:
                conditions = with_condition(
                    conditions,
                    "Degraded",
                    "True",
                    "RunnersFailingToStart",
                    f"runners fail to start: {failing}; check spec.template",
                    now,
                )
            status["conditions"] = conditions
            return status

        update_status(self.context.api, scale_set.namespace, scale_set.name, change)


def _start_failure_reason(pod) -> str:
    for container in (pod.status.container_statuses or []) if pod.status else []:
        state = container.state
        if state and state.waiting and state.waiting.reason:
            return f"container {container.name}: {state.waiting.reason}"
        if state and state.terminated:
            return f"container {container.name} exited with {state.terminated.exit_code}"
    return f"pod {pod.metadata.name} failed to start"


def _finalizers_patch(obj: dict, finalizers: list[str]) -> dict:
    # With the resourceVersion read: a concurrent change fails (409) and is retried.
    meta = obj["metadata"]
    return {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
