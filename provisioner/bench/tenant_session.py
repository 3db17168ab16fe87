"""Runs the `--tenants K` case on a BenchSession's pipeline: K RunnerScaleSets, each in its own
organisation with its own token in its own Secret, scaled at once on the reconciler and the
workers in parallel mode; one tenant alone with the largest share first."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from provisioner.bench.report import Leaks
from provisioner.bench.session import POLL_SECONDS, BenchSession, PodArrivals
from provisioner.bench.tenant_report import TenantComparison, TenantGroupRun, TenantOutcome
from provisioner.bench.tenants import (
    Credential,
    CredentialPool,
    GitHubLimits,
    TenantCase,
    minimum_seconds,
)
from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.kube.crd import GROUP, PLURAL, VERSION

USER_AGENT = "provisioner-bench"
SECRET_KEY = "github_token"


@dataclass(frozen=True)
class Tenant:
    scale_set: str
    organisation: str
    credential: Credential
    runners: int


class TenantBench:
    def __init__(
        self,
        session: BenchSession,
        pool: CredentialPool,
        github_profile: str,
        limits: GitHubLimits | None,
        budget_resource: str = "core",
    ):
        self.session = session
        self.pipeline = session.pipeline
        self.pool = pool
        self.github_profile = github_profile
        # Set when the simulator has limits: then each tenant's least possible time is reported.
        self.limits = limits
        self.budget_resource = budget_resource

    def run(self, case: TenantCase, on_progress: Callable[[int], None]) -> TenantComparison:
        """``on_progress`` gets the runners created so far, the alone run's included."""
        self.session.use(self.session.setup_for("parallel", case.concurrency))
        base = f"k{case.tenants}-c{case.concurrency}-n{case.runners}"
        alone = None
        if case.runs_alone:
            self.session.status(f"one tenant alone with {case.alone_share} runners")
            alone = self._group(f"alone-{base}", [case.alone_share], on_progress)
        self.session.status(f"{case.tenants} tenants at once")
        done_alone = alone.created if alone else 0
        together = self._group(base, case.shares, lambda done: on_progress(done_alone + done))
        return TenantComparison(
            runners=case.runners,
            tenants=case.tenants,
            concurrency=case.concurrency,
            github_latency_ms=self.session.github_latency_ms,
            github_profile=self.github_profile,
            alone=alone or together,
            together=together,
        )

    # One group of tenants scaled at once.

    def _group(
        self, base: str, shares: list[int], on_progress: Callable[[int], None]
    ) -> TenantGroupRun:
        tenants = [
            Tenant(f"{base}-t{index}", f"org-{base}-t{index}", self.pool.take(), share)
            for index, share in enumerate(shares, 1)
        ]
        for tenant in tenants:
            self._apply(tenant)
        api = self.pipeline.api
        assert api is not None
        namespace = self.session.namespace
        arrivals = [PodArrivals(api, namespace, tenant.scale_set).start() for tenant in tenants]
        events_before = self.pipeline.github_counters()
        try:
            started = time.monotonic()
            for tenant in tenants:
                self.pipeline.scale(namespace, tenant.scale_set, tenant.runners)
            finished = self._wait_for(tenants, arrivals, started, on_progress)
        finally:
            for arrival in arrivals:
                arrival.stop()
        budget_at_n = {tenant.scale_set: self._budget(tenant.credential) for tenant in tenants}
        created = {
            tenant.scale_set: self.session.count(tenant.scale_set).complete_runners
            for tenant in tenants
        }
        leaks = self._scale_to_zero(tenants)
        counters = self.pipeline.github_counters()
        by_credential = counters.get("by_credential", {})
        outcomes = []
        for tenant in tenants:
            answers = by_credential.get(tenant.credential.key, {})
            limit, left_at_n = budget_at_n[tenant.scale_set]
            done = finished[tenant.scale_set]
            outcomes.append(
                TenantOutcome(
                    scale_set=tenant.scale_set,
                    organisation=tenant.organisation,
                    credential=tenant.credential.key,
                    runners=tenant.runners,
                    created=created[tenant.scale_set],
                    seconds=None if done is None else done - started,
                    github_calls=sum(answers.values()),
                    answered_429=answers.get("429", 0),
                    answered_403=answers.get("403", 0),
                    budget_limit=limit,
                    budget_left_at_n=left_at_n,
                    budget_left_at_end=self._budget(tenant.credential)[1],
                    leaks=leaks[tenant.scale_set],
                    minimum=None
                    if self.limits is None
                    else minimum_seconds(
                        tenant.runners, self.session.github_latency_ms / 1000, self.limits
                    ),
                )
            )

        def spent(event: str) -> int:
            return int(counters.get(event, 0)) - int(events_before.get(event, 0))

        return TenantGroupRun(
            tenants=outcomes,
            secondary_rate_limited=spent("secondary_rate_limited"),
            primary_rate_limited=spent("primary_rate_limited"),
            registrations_capped=spent("registrations_capped"),
        )

    def _apply(self, tenant: Tenant) -> None:
        """The tenant's Secret with its token, and its scale set in its own organisation."""
        api = self.pipeline.api
        assert api is not None
        namespace = self.session.namespace
        core = k8s.CoreV1Api(api)
        with contextlib.suppress(ApiException):  # already there: made by an earlier run
            core.create_namespace(k8s.V1Namespace(metadata={"name": namespace}))
        secret_name = f"{tenant.scale_set}-github"
        token = base64.b64encode(tenant.credential.token.encode()).decode()
        core.create_namespaced_secret(
            namespace,
            k8s.V1Secret(metadata={"name": secret_name}, data={SECRET_KEY: token}),
        )
        manifest = scale_set_manifest(tenant.scale_set, 0, tenant.runners)
        manifest["spec"]["githubConfigUrl"] = f"https://github.com/{tenant.organisation}"
        manifest["spec"]["githubConfigSecret"] = secret_name
        k8s.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, manifest
        )

    def _wait_for(
        self,
        tenants: list[Tenant],
        arrivals: list[PodArrivals],
        started: float,
        on_progress: Callable[[int], None],
    ) -> dict[str, float | None]:
        """When each tenant's share of pods existed (None: not within the timeout)."""
        finished: dict[str, float | None] = {tenant.scale_set: None for tenant in tenants}
        while time.monotonic() - started < self.session.timeout:
            for tenant, arrival in zip(tenants, arrivals, strict=True):
                finished[tenant.scale_set] = arrival.nth(tenant.runners)
            on_progress(
                sum(
                    min(arrival.count(), tenant.runners)
                    for tenant, arrival in zip(tenants, arrivals, strict=True)
                )
            )
            if None not in finished.values():
                break
            time.sleep(POLL_SECONDS)
        return finished

    def _budget(self, credential: Credential) -> tuple[int, int]:
        """The credential's primary limit and what is left of it, as GitHub reports them to
        the credential itself (GET /rate_limit spends nothing)."""
        answer = httpx.get(
            f"{self.pipeline.ghsim_url}/rate_limit",
            headers={"Authorization": f"Bearer {credential.token}", "User-Agent": USER_AGENT},
            timeout=10,
        )
        answer.raise_for_status()
        budget = answer.json()["resources"][self.budget_resource]
        return int(budget["limit"]), int(budget["remaining"])

    def _scale_to_zero(self, tenants: list[Tenant]) -> dict[str, Leaks]:
        """Scale every tenant to 0 at once; what is left once nothing has been removed for the
        grace period counts as leaked."""
        namespace = self.session.namespace
        self.session.status("scaling the tenants back to 0")
        for tenant in tenants:
            self.pipeline.scale(namespace, tenant.scale_set, 0)

        def left() -> dict[str, Leaks]:
            counts = {tenant.scale_set: self.session.count(tenant.scale_set) for tenant in tenants}
            return {
                name: Leaks(count.registrations, count.secrets, count.pods)
                for name, count in counts.items()
            }

        remaining = left()
        deadline = time.monotonic() + self.session.grace
        while any(leak.total for leak in remaining.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
            now = left()
            if sum(leak.total for leak in now.values()) < sum(
                leak.total for leak in remaining.values()
            ):
                deadline = time.monotonic() + self.session.grace
            remaining = now
        return remaining
