"""Creating one runner: JIT registration, Secret, Pod, under the limits, retried until the
runner's deadline and rolled back on final failure. The same code serves the Celery task and
the sequential (ARC-like) path.

Idempotent by runner name: the registration, Secret and Pod are all named after the runner,
so a retried or redelivered attempt finds what an earlier one made and finishes the job. The
runner's lock (renewed while its holder lives) lets one delivery at a time work on it, and
every object found under the runner's name is checked to be the scale set's own before it is
used or removed."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis

from provisioner import metrics
from provisioner.backoff import retry_delay
from provisioner.creation import outcome
from provisioner.creation.failures import PermanentFailure, RetryableFailure, classify
from provisioner.creation.outcome import CreationResult
from provisioner.failure_budget import CREATION_FAILURES, FailureBudget
from provisioner.github import JitConfig
from provisioner.github.errors import Conflict, NotFound
from provisioner.kube.scaleset import ScaleSet, ScaleSetSpecError
from provisioner.ledger import LedgerEntry
from provisioner.limits import RateLimitExceeded
from provisioner.naming import owner_label
from provisioner.runtime import Runtime
from provisioner.runtime.limits import CredentialLimits
from provisioner.runtime.registrations import owned
from provisioner.runtime.runner_lock import LEASE_SECONDS, RunnerLease
from provisioner.runtime.scale_sets import ScaleSetGone

log = logging.getLogger(__name__)

# A second delivery waits this long for the first to let go: a dead holder's lease lapses
# within it; a live holder finishes the runner itself.
LOCK_WAIT_SECONDS = LEASE_SECONDS + 2.0
# An attempt started with less time than this left before the deadline could not finish.
MIN_ATTEMPT_SECONDS = 1.0


# A wait GitHub asks of a credential longer than this is not sat out in a worker thread: the
# task goes back to the queue until then, and other tenants' creations use the thread.
REQUEUE_AFTER_SECONDS = 1.0
# A task waits in its thread for one of its credential's creation slots while the slots'
# turnover says one comes within SHARE_PATIENCE_SECONDS (twice that in all at most), and
# SHARE_WAIT_SECONDS when none was released lately (the calls are slow or hung, or just
# started). Otherwise it comes back when its slot is expected (SHARE_RECHECK_SECONDS when that
# is unknown): a busy or slow credential's creations do not fill the worker threads, and the
# slots of a credential whose calls are answered in a few hundred milliseconds are not left
# unused while its creations sit out a countdown.
SHARE_PATIENCE_SECONDS = 1.5
SHARE_WAIT_SECONDS = 0.5
SHARE_RECHECK_SECONDS = 1.0
SHARE_RECHECK_MIN_SECONDS = 0.5


class Cancelled(Exception):
    """The runner is no longer wanted (scale-down, deleted scale set): undo and stop."""


class CredentialPaused(Exception):
    """The scale set's credential may not be used for ``seconds`` (GitHub's pause, a full
    window, or its creation slots all taken): the creation is handed back, holding no thread, lock
    or slot meanwhile. Nothing it made is undone."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(f"credential paused for {seconds:.1f}s: {why}")
        self.seconds = seconds


class LockLost(Exception):
    """Another delivery holds the runner now: stop without touching anything."""


@dataclass
class _Progress:
    """How far this creation got; what exists under the runner's name is re-checked on
    each attempt."""

    secret_written: bool = False
    pod_written: bool = False
    throttled: int = 0


class RunnerCreator:
    """Creates runners for ledger entries; one per process, shared by its threads."""

    def __init__(
        self,
        runtime: Runtime,
        clock: Callable[[], float] = time.monotonic,
        requeue_when_paused: bool = False,
    ):
        """``requeue_when_paused``: raise CredentialPaused instead of waiting in the thread
        (the tasks do; the sequential path waits, as ARC would)."""
        self.runtime = runtime
        self.settings = runtime.settings
        self.clock = clock
        self.requeue_when_paused = requeue_when_paused
        self.creation_failures = FailureBudget(runtime.redis, CREATION_FAILURES)

    def create(self, entry: LedgerEntry, generation: int | None = None) -> CreationResult:
        started = self.clock()
        labels = {"scale_set": entry.scale_set}
        metrics.RUNNERS_IN_FLIGHT.labels(**labels).inc()
        try:
            result = self._create(entry, generation, started)
        finally:
            metrics.RUNNERS_IN_FLIGHT.labels(**labels).dec()
        metrics.RUNNER_CREATION_SECONDS.labels(
            scale_set=entry.scale_set, outcome=result.outcome
        ).observe(result.seconds)
        metrics.RUNNER_CREATIONS.labels(
            scale_set=entry.scale_set, outcome=result.outcome, reason=result.reason or ""
        ).inc()
        if result.outcome == outcome.FAILED and result.reason in outcome.OWN_FAULT_REASONS:
            # The reconciler backs off replanning once a scale set's own creations keep failing.
            with contextlib.suppress(redis.RedisError):
                self.creation_failures.record(entry.scale_set, result.reason)
        if result.reason == outcome.REASON_SCALE_SET_GONE:
            # A long-running worker must not keep reporting scale sets that are gone.
            metrics.forget_scale_set(entry.scale_set)
        return result

    def _create(self, entry: LedgerEntry, generation: int | None, started: float) -> CreationResult:
        def result(
            kind: str, reason: str | None, attempts: int = 0, detail: str = ""
        ) -> CreationResult:
            return CreationResult(
                name=entry.name,
                scale_set=entry.scale_set,
                batch_id=entry.batch_id,
                outcome=kind,
                reason=reason,
                attempts=attempts,
                seconds=self.clock() - started,
                throttled=progress.throttled,
                detail=detail,
            )

        runtime = self.runtime
        progress = _Progress()
        with runtime.locks.hold(entry.name, LOCK_WAIT_SECONDS) as lease:
            if lease is None:
                return result(outcome.SKIPPED, outcome.REASON_HELD_ELSEWHERE)
            if not runtime.ledger_wants(entry):
                return result(outcome.SKIPPED, None)
            try:
                scale_set = runtime.scale_sets.get(
                    entry.scale_set, generation, entry.owner_uid or None
                )
            except ScaleSetGone:
                runtime.complete(entry)
                return result(outcome.SKIPPED, outcome.REASON_SCALE_SET_GONE)
            except ScaleSetSpecError as exc:
                runtime.complete(entry)
                return result(outcome.FAILED, outcome.REASON_SCALE_SET_INVALID, detail=str(exc))
            except Exception as exc:  # the API server away: planned anew, nothing made
                failure = classify(exc)
                runtime.complete(entry)
                return result(outcome.FAILED, failure.reason, detail=failure.detail)

            deadline = started + self.settings.runner_creation_timeout
            attempts = 0
            while True:
                attempts += 1
                try:
                    self._attempt(scale_set, entry, lease, progress, deadline)
                    runtime.created(entry)
                    return result(outcome.CREATED, None, attempts)
                except LockLost:
                    return result(outcome.SKIPPED, outcome.REASON_HELD_ELSEWHERE, attempts)
                except Cancelled:
                    self._roll_back(scale_set, entry.name, lease)
                    return result(outcome.SKIPPED, outcome.REASON_CANCELLED, attempts)
                except CredentialPaused:
                    raise
                except Exception as exc:
                    failure = classify(exc)
                    if isinstance(failure, PermanentFailure):
                        log.warning("runner %s: %s", entry.name, failure)
                        break
                    self._on_retryable(scale_set, failure, progress)
                    wait = failure.retry_after or 0.0
                    if self.requeue_when_paused and wait > REQUEUE_AFTER_SECONDS:
                        raise CredentialPaused(wait, str(failure)) from None
                    delay = self._delay(failure, attempts, deadline)
                    if delay is None:
                        log.warning(
                            "runner %s: %s, and the %ss deadline leaves no time for another try",
                            entry.name,
                            failure,
                            self.settings.runner_creation_timeout,
                        )
                        break
                    log.info("runner %s: %s; retrying in %.2fs", entry.name, failure, delay)
                    time.sleep(delay)
            self._roll_back(scale_set, entry.name, lease)
            runtime.complete(entry)
            return result(outcome.FAILED, failure.reason, attempts, failure.detail)

    def _delay(self, failure: RetryableFailure, attempts: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, shortened to fit the deadline; None when
        no attempt fits any more."""
        delay = retry_delay(
            attempts - 1,
            self.settings.retry_backoff_base,
            self.settings.retry_backoff_max,
            retry_after=failure.retry_after,
        )
        left = deadline - self.clock() - MIN_ATTEMPT_SECONDS
        if left <= 0 or (failure.retry_after is not None and failure.retry_after > left):
            return None
        return min(delay, left)

    def _on_retryable(
        self, scale_set: ScaleSet, failure: RetryableFailure, progress: _Progress
    ) -> None:
        if failure.reason == outcome.REASON_RATE_LIMITED and failure.throttled:
            # Every worker waits for this credential, not only this task: the next call would
            # be refused too. Other credentials are not touched.
            with contextlib.suppress(Exception):
                credential = self.runtime.github.credential(scale_set)
                credential.on_throttled(failure.retry_after or 0.0)
        progress.throttled += int(failure.throttled)

    # One attempt.

    def _attempt(
        self,
        scale_set: ScaleSet,
        entry: LedgerEntry,
        lease: RunnerLease,
        progress: _Progress,
        deadline: float,
    ) -> None:
        runtime = self.runtime
        objects = runtime.objects(scale_set)
        name = entry.name
        jit: JitConfig | None = None
        if not progress.secret_written:
            jit = self._register(scale_set, name, lease, deadline)
            # A deletion or scale-down while GitHub answered: nothing more is made.
            if not runtime.ledger_wants(entry):
                raise Cancelled
        # The global ceiling is held around the Kubernetes writes only: a call waiting on a
        # slow or hung GitHub counts against its own credential's share, never against the
        # other tenants' creations.
        with runtime.limits.global_slot(timeout=self._left(deadline)):
            writes = int(jit is not None and not progress.secret_written)
            writes += int(not progress.pod_written)
            if writes:
                runtime.limits.kube_tokens(timeout=self._left(deadline), count=writes)
            if not progress.secret_written:
                if jit is not None and not objects.create_secret(
                    scale_set, name, jit.encoded_jit_config
                ):
                    self._check_owner(objects.secret_owner(name), scale_set, f"Secret {name}")
                progress.secret_written = True
            if not progress.pod_written:
                if not objects.create_pod(scale_set, name):
                    self._check_owner(objects.pod_owner(name), scale_set, f"Pod {name}")
                progress.pod_written = True

    def _register(
        self, scale_set: ScaleSet, name: str, lease: RunnerLease, deadline: float
    ) -> JitConfig | None:
        """The JIT config for ``name``, or None when an earlier attempt already registered it
        and stored its config in the Secret."""
        try:
            return self._generate(scale_set, name, deadline)
        except Conflict:
            pass
        # Registered before: by an earlier attempt or delivery of this runner, or by someone
        # else under the same name.
        existing = self.runtime.registrations.find(scale_set, name)
        if existing is None:
            return self._generate(scale_set, name, deadline)  # removed since: register anew
        if not owned(existing, scale_set, unlabelled_is_ours=False):
            raise PermanentFailure(
                outcome.REASON_NAME_TAKEN,
                f"a registration named {name} in {scale_set.github_config_url} belongs to "
                "another RunnerScaleSet; set spec.runnerNamePrefix to a prefix of its own",
            )
        secret_owner = self.runtime.objects(scale_set).secret_owner(name)
        if secret_owner == scale_set.uid:
            return None
        # Ours, but its JIT config was lost with the attempt that made it: start over.
        if not lease.held:
            raise LockLost
        self.runtime.registrations.remove(scale_set, name, existing, unlabelled_is_ours=False)
        return self._generate(scale_set, name, deadline)

    def _generate(self, scale_set: ScaleSet, name: str, deadline: float) -> JitConfig:
        runtime = self.runtime
        scope = runtime.github.scope(scale_set)
        credential = runtime.github.credential(scale_set)
        labels = [*scale_set.labels, owner_label(scale_set.uid)]
        self._wait_for_credential(credential.paused_for(), "GitHub asked it to wait", deadline)
        # A credential's calls to GitHub in flight are bounded by its share, as GitHub bounds
        # them per credential.
        with self._share_slot(credential, scale_set, deadline):
            call = uuid.uuid4().hex
            while (wait := runtime.limits.try_registration(credential, scope, call)) > 0:
                self._wait_for_credential(wait, "registrations per minute or per scope", deadline)
            try:
                runtime.limits.github_token(credential, timeout=self._left(deadline))
                return runtime.github.request(
                    scale_set,
                    lambda client: client.generate_jitconfig(
                        scope, name, scale_set.runner_group_id, labels
                    ),
                )
            except NotFound as exc:
                raise PermanentFailure(
                    outcome.REASON_GITHUB_NOT_FOUND,
                    f"{exc}; check spec.githubConfigUrl ({scale_set.github_config_url}) "
                    f"and spec.runnerGroupId ({scale_set.runner_group_id})",
                ) from None
            finally:
                runtime.limits.registration_answered(credential, scope, call)

    @contextlib.contextmanager
    def _share_slot(
        self, credential: CredentialLimits, scale_set: ScaleSet, deadline: float
    ) -> Iterator[None]:
        """The credential's share slot. A task waits for one only briefly: a credential whose
        calls GitHub answers slowly may hold its slots long, and the thread serves other
        tenants meanwhile; the task comes back a moment later."""
        if self.requeue_when_paused:
            wait, patience = SHARE_WAIT_SECONDS, SHARE_PATIENCE_SECONDS
        else:
            wait, patience = self._left(deadline), None
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(
                    self.runtime.limits.share_slot(credential, wait, scale_set.key, patience)
                )
            except RateLimitExceeded as exc:
                if not self.requeue_when_paused:
                    raise
                expected = exc.retry_after or SHARE_RECHECK_SECONDS
                raise CredentialPaused(
                    max(SHARE_RECHECK_MIN_SECONDS, expected), "its creation slots are busy"
                ) from None
            yield

    def _check_owner(self, owner: str | None, scale_set: ScaleSet, what: str) -> None:
        if owner is None:
            # Deleted between the create and the read: the next attempt makes it again.
            raise RetryableFailure(outcome.REASON_KUBE_UNAVAILABLE, detail=f"{what} vanished")
        if owner != scale_set.uid:
            raise PermanentFailure(
                outcome.REASON_NAME_TAKEN,
                f"{what} in namespace {scale_set.namespace} belongs to another owner",
            )

    def _wait_for_credential(self, seconds: float, why: str, deadline: float) -> None:
        """Sits out a short wait; a long one hands the creation back (tasks) or is slept
        within the deadline (sequential path)."""
        if seconds <= 0:
            return
        if self.requeue_when_paused and seconds > REQUEUE_AFTER_SECONDS:
            raise CredentialPaused(seconds, why)
        if self.clock() + seconds > deadline:
            raise RetryableFailure(outcome.REASON_RATE_LIMITED, retry_after=seconds, detail=why)
        time.sleep(seconds)

    def _left(self, deadline: float) -> float:
        return max(0.1, deadline - self.clock())

    # Rollback.

    def _roll_back(self, scale_set: ScaleSet, name: str, lease: RunnerLease) -> None:
        """Remove what exists under ``name`` and is the scale set's. Not while another
        delivery holds the runner (it would undo that one's work). What cannot be removed now
        is left to garbage collection, which finds registrations with no pod."""
        if not lease.held:
            log.warning("runner %s: lock lost before rollback; the holder finishes it", name)
            return
        try:
            self.runtime.objects(scale_set).delete_runner_objects(name, owner_uid=scale_set.uid)
        except Exception as exc:
            log.warning("runner %s: rollback of Pod/Secret failed (%s); left to gc", name, exc)
        try:
            self.runtime.registrations.remove(scale_set, name, unlabelled_is_ours=False)
        except Exception as exc:
            log.warning("runner %s: rollback of registration failed (%s); left to gc", name, exc)
