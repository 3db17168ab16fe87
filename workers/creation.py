"""Creating one runner: JIT registration, Secret, Pod, under the global limits, with retries
and rollback. The same code serves the Celery task and the sequential (ARC-like) path.

Idempotent by runner name: the registration, Secret and Pod are all named after the runner, so
a retried or redelivered attempt finds what an earlier one made and finishes the job."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from provisioner import metrics
from provisioner.backoff import retry_delay
from provisioner.failure_budget import CREATION_FAILURES, FailureBudget
from provisioner.github.errors import (
    Conflict,
    GitHubError,
    GitHubUnavailable,
    InvalidGitHubResponse,
    NotFound,
    RateLimited,
    RunnerBusy,
    ServerError,
    Unauthorized,
)
from provisioner.github.models import InvalidScope
from provisioner.kube.scaleset import GitHubSecretError, ScaleSet, ScaleSetSpecError
from provisioner.ledger import LedgerEntry
from provisioner.limits import CircuitOpen, RateLimitExceeded
from workers import outcome
from workers.context import WorkerContext
from workers.outcome import CreationResult

log = logging.getLogger(__name__)


class RetryableFailure(Exception):
    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        throttled: bool = False,
        detail: str = "",
    ):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.retry_after = retry_after
        self.throttled = throttled


class PermanentFailure(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class _Attempt:
    """What this creation has made so far; rollback undoes exactly this (and what an earlier
    delivery made under the same name)."""

    registered: bool = False
    secret: bool = False
    pod: bool = False
    throttled: int = 0


def classify_kube_error(exc: ApiException) -> Exception:
    body = (exc.body or "") if isinstance(exc.body, str) else ""
    if exc.status == 403 and "exceeded quota" in body:
        return RetryableFailure(outcome.REASON_QUOTA)
    if exc.status == 403:
        return PermanentFailure(outcome.REASON_FORBIDDEN, _kube_message(exc))
    if exc.status in (400, 422):
        return PermanentFailure(outcome.REASON_POD_REJECTED, _kube_message(exc))
    if exc.status == 429:
        retry_after = _float(exc.headers.get("Retry-After") if exc.headers else None)
        return RetryableFailure(outcome.REASON_KUBE_UNAVAILABLE, retry_after, throttled=True)
    return RetryableFailure(outcome.REASON_KUBE_UNAVAILABLE)


def _kube_message(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message", exc.reason))
    except (TypeError, ValueError):
        return str(exc.reason)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RunnerCreator:
    """Creates runners for ledger entries; one per process, shared by its threads."""

    def __init__(self, context: WorkerContext, clock: Callable[[], float] = time.monotonic):
        self.context = context
        self.settings = context.settings
        self.clock = clock
        self.creation_failures = FailureBudget(context.redis, CREATION_FAILURES)

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
        if result.outcome == outcome.FAILED:
            # The reconciler backs off replanning once a scale set's creations keep failing.
            with contextlib.suppress(redis.RedisError):
                self.creation_failures.record(entry.scale_set, result.reason or "unknown")
        return result

    def _create(self, entry: LedgerEntry, generation: int | None, started: float) -> CreationResult:
        def result(kind: str, reason: str | None, attempts: int, throttled: int = 0):
            return CreationResult(
                name=entry.name,
                scale_set=entry.scale_set,
                batch_id=entry.batch_id,
                outcome=kind,
                reason=reason,
                attempts=attempts,
                seconds=self.clock() - started,
                throttled=throttled,
            )

        ctx = self.context
        with ctx.runner_lock(entry.name, self.settings.runner_creation_timeout + 10) as owned:
            if not owned or not ctx.ledger_wants(entry):
                # Another delivery made (or is making) this runner, or the reconciler gave it up.
                return result(outcome.SKIPPED, None, 0)
            try:
                scale_set = ctx.scale_set(entry.scale_set, generation)
            except ScaleSetSpecError as exc:
                ctx.complete(entry)
                return result(outcome.FAILED, f"{outcome.REASON_SCALE_SET_INVALID}: {exc}", 0)
            except LookupError:
                ctx.complete(entry)
                return result(outcome.FAILED, outcome.REASON_SCALE_SET_GONE, 0)

            deadline = started + self.settings.runner_creation_timeout
            attempt = _Attempt()
            reason = outcome.REASON_TIMEOUT
            attempts = 0
            for attempts in range(1, self.settings.create_max_attempts + 1):
                try:
                    self._attempt_guarded(scale_set, entry.name, attempt, deadline)
                    ctx.complete(entry)
                    return result(outcome.CREATED, None, attempts, attempt.throttled)
                except PermanentFailure as exc:
                    reason = exc.reason
                    log.warning("runner %s: %s", entry.name, exc)
                    break
                except RetryableFailure as exc:
                    reason = exc.reason
                    attempt.throttled += int(exc.throttled)
                    delay = retry_delay(
                        attempts - 1,
                        self.settings.retry_backoff_base,
                        self.settings.retry_backoff_max,
                        retry_after=exc.retry_after,
                    )
                    if self.clock() + delay >= deadline:
                        log.warning(
                            "runner %s: %s, and the next attempt would pass the %ss timeout",
                            entry.name,
                            exc,
                            self.settings.runner_creation_timeout,
                        )
                        break
                    log.info("runner %s: %s; retrying in %.2fs", entry.name, exc, delay)
                    time.sleep(delay)
            self._roll_back(scale_set, entry.name)
            ctx.complete(entry)
            return result(outcome.FAILED, reason, attempts, attempt.throttled)

    def _attempt_guarded(
        self, scale_set: ScaleSet, name: str, attempt: _Attempt, deadline: float
    ) -> None:
        """One attempt. A limit that cannot be had in time and Redis being away are reasons
        to retry, like a refusing GitHub."""
        try:
            self._attempt(scale_set, name, attempt, deadline)
        except RateLimitExceeded as exc:
            raise RetryableFailure(outcome.REASON_RATE_LIMITED, exc.retry_after) from None
        except redis.RedisError:
            raise RetryableFailure(outcome.REASON_REDIS_UNAVAILABLE) from None

    def _attempt(self, scale_set: ScaleSet, name: str, attempt: _Attempt, deadline: float) -> None:
        ctx = self.context
        if not attempt.secret:
            jit = self._register(scale_set, name, attempt, deadline)
            if jit is not None:
                self._kube_write(
                    deadline,
                    lambda: ctx.objects(scale_set).create_secret(
                        scale_set, name, jit.encoded_jit_config
                    ),
                )
            attempt.secret = True
        if not attempt.pod:
            self._kube_write(deadline, lambda: ctx.objects(scale_set).create_pod(scale_set, name))
            attempt.pod = True

    def _register(self, scale_set: ScaleSet, name: str, attempt: _Attempt, deadline: float):
        """The JIT config for ``name``, or None when an earlier attempt already stored it."""
        ctx = self.context
        scope = ctx.scope(scale_set)
        github = self._github_call(deadline)
        try:
            jit = github.call(
                scale_set,
                lambda client: client.generate_jitconfig(
                    scope,
                    name,
                    scale_set.runner_group_id,
                    list(scale_set.labels),
                ),
            )
        except Conflict:
            # Registered by an earlier attempt or delivery. If its Secret was written the job
            # is done up to the Pod; if not, its JIT config is lost: start the registration over.
            if self._kube_call(deadline, lambda: ctx.secret_exists(scale_set, name)):
                return None
            self._delete_registration(scale_set, name, deadline)
            jit = self._github_call(deadline).call(
                scale_set,
                lambda client: client.generate_jitconfig(
                    scope, name, scale_set.runner_group_id, list(scale_set.labels)
                ),
            )
        attempt.registered = True
        return jit

    def _github_call(self, deadline: float):
        return _GitHubCall(self.context, deadline, self.clock)

    def _kube_write(self, deadline: float, write: Callable[[], object]) -> object:
        self.context.kube_token(timeout=max(0.1, deadline - self.clock()))
        return self._kube_call(deadline, write)

    def _kube_call(self, deadline: float, call: Callable[[], object]) -> object:
        try:
            return call()
        except ApiException as exc:
            raise classify_kube_error(exc) from None
        except (Urllib3Error, OSError):
            raise RetryableFailure(outcome.REASON_KUBE_UNAVAILABLE) from None

    def _delete_registration(self, scale_set: ScaleSet, name: str, deadline: float) -> None:
        scope = self.context.scope(scale_set)
        call = self._github_call(deadline)
        runner = call.call(scale_set, lambda client: client.find_runner_by_name(scope, name))
        if runner is None:
            return
        with contextlib.suppress(NotFound):
            self._github_call(deadline).call(
                scale_set, lambda client: client.delete_runner(scope, runner.id)
            )

    def _roll_back(self, scale_set: ScaleSet, name: str) -> None:
        """Remove whatever exists under ``name``. What cannot be removed now (GitHub down) is
        left to garbage collection, which finds registrations with no pod."""
        ctx = self.context
        try:
            ctx.objects(scale_set).delete_runner_objects(name)
        except (ApiException, Urllib3Error, OSError) as exc:
            log.warning("runner %s: rollback of Pod/Secret failed (%s); left to gc", name, exc)
        deadline = self.clock() + max(5.0, self.settings.github_request_timeout)
        try:
            self._delete_registration(scale_set, name, deadline)
        except RunnerBusy:
            log.warning("runner %s: registration is busy; left to scale-down", name)
        except (
            GitHubError,
            RetryableFailure,
            PermanentFailure,
            RateLimitExceeded,
            redis.RedisError,
        ) as exc:
            log.warning("runner %s: rollback of registration failed (%s); left to gc", name, exc)


class _GitHubCall:
    """One GitHub request under the shared bucket and breaker, with errors classified."""

    def __init__(self, context: WorkerContext, deadline: float, clock: Callable[[], float]):
        self.context = context
        self.deadline = deadline
        self.clock = clock

    def call(self, scale_set: ScaleSet, request: Callable):
        ctx = self.context
        ctx.github_token(timeout=max(0.1, self.deadline - self.clock()))
        try:
            # The budget bounds the calls to GitHub in flight across all workers (the slow,
            # rate-limited dependency). A creation holds no slot for its Kubernetes writes,
            # which have their own bucket: the next GitHub call need not wait for them.
            with ctx.budget_slot(timeout=max(0.1, self.deadline - self.clock())):
                return ctx.github_request(scale_set, request)
        except RateLimited as exc:
            # Every worker waits, not only this task: the next call would be refused too.
            ctx.github_bucket.pause_until(time.time() + exc.retry_after)
            ctx.on_throttled()
            raise RetryableFailure(
                outcome.REASON_RATE_LIMITED, exc.retry_after, throttled=True
            ) from None
        except GitHubUnavailable as exc:
            ctx.on_timeout()
            raise RetryableFailure(outcome.REASON_GITHUB_UNAVAILABLE, detail=str(exc)) from None
        except ServerError as exc:
            raise RetryableFailure(outcome.REASON_GITHUB_ERROR, detail=str(exc)) from None
        except CircuitOpen as exc:
            raise RetryableFailure(
                outcome.REASON_CIRCUIT_OPEN, getattr(exc, "retry_after", None)
            ) from None
        except InvalidGitHubResponse:
            raise RetryableFailure(outcome.REASON_GITHUB_INVALID) from None
        except Unauthorized as exc:
            raise PermanentFailure(outcome.REASON_GITHUB_UNAUTHORIZED, str(exc)) from None
        except GitHubSecretError as exc:
            raise PermanentFailure(outcome.REASON_GITHUB_SECRET, str(exc)) from None
        except InvalidScope as exc:
            raise PermanentFailure(outcome.REASON_SCALE_SET_INVALID, str(exc)) from None
