"""Two tenants: scale sets A and B registering into two organisations, each with its own
GitHub credential, served by one reconciler and two workers. Whatever GitHub does to A's
credential (throttle it, revoke it, answer it slowly), B's 50 runners come as fast as when B is
alone, measured first in the same test; and nothing leaks once both are back to 0."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time

import pytest
from kubernetes import client as k8s

from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.github.auth import PatCredentials
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from tests.fixtures.ghsim import GHSIM_SECOND_TOKEN, GHSIM_THIRD_TOKEN, GHSIM_TOKEN
from tests.fixtures.pipeline import TestPipeline as Pipeline
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

A, B = "tenant-a", "tenant-b"
TOKEN_A, TOKEN_B = GHSIM_TOKEN, GHSIM_SECOND_TOKEN
# The simulator's non-secret names of the two PATs, in its per-credential counters.
SIM_KEY_A = "pat:1"
RUNNERS = 50
# B with A in trouble may take this much of B's time alone.
SLOWDOWN = 1.5


def _secret_data(token: str) -> dict[str, str]:
    return {"github_token": base64.b64encode(token.encode()).decode()}


def _start_tenants(pipeline: Pipeline) -> None:
    core = k8s.CoreV1Api(pipeline.kube_api)
    for name, org, token in ((A, "org-a", TOKEN_A), (B, "org-b", TOKEN_B)):
        core.create_namespaced_secret(
            pipeline.namespace,
            k8s.V1Secret(metadata={"name": f"{name}-github"}, data=_secret_data(token)),
        )
        manifest = scale_set_manifest(name, 0, None)
        manifest["spec"]["githubConfigUrl"] = f"https://github.com/{org}"
        pipeline.custom.create_namespaced_custom_object(
            GROUP, VERSION, pipeline.namespace, PLURAL, manifest
        )
    pipeline.start_workers(2)
    pipeline.start_reconciler()


def _time_b(pipeline: Pipeline) -> float:
    """Seconds from scaling B to RUNNERS until they all exist."""
    started = time.monotonic()
    pipeline.scale(B, RUNNERS)
    pipeline.wait_for_runners(RUNNERS, B, timeout=120)
    return time.monotonic() - started


def _b_alone(pipeline: Pipeline) -> float:
    """B's time alone, once both tenants' first runners warmed the workers up."""
    for name in (A, B):
        pipeline.scale(name, 2)
    for name in (A, B):
        pipeline.wait_for_runners(2, name)
        pipeline.scale(name, 0)
    for name in (A, B):
        pipeline.wait_for_runners(0, name)
    alone = _time_b(pipeline)
    pipeline.scale(B, 0)
    pipeline.wait_for_runners(0, B)
    return alone


def _assert_b_unaffected(pipeline: Pipeline, alone: float, what: str) -> None:
    with_a = _time_b(pipeline)
    print(f"{what}: B alone {alone:.1f}s, B with A {with_a:.1f}s")
    assert with_a < SLOWDOWN * alone, f"B took {with_a:.1f}s with A {what}, {alone:.1f}s alone"


def _calls_of_a(pipeline: Pipeline, status: int | None = None) -> int:
    """Calls the simulator answered A's credential (with ``status`` only, when given)."""
    outcomes = pipeline.ghsim.admin.counters()["by_credential"].get(SIM_KEY_A, {})
    if status is not None:
        return int(outcomes.get(str(status), 0))
    return sum(int(count) for count in outcomes.values())


def _holding(pipeline: Pipeline, name: str, kind: str) -> dict:
    """The scale set's condition ``kind`` while it is True, else {}."""
    conditions = (pipeline.scale_set(name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind and c["status"] == "True"), {})


def _credential_row(pipeline: Pipeline, identity: str) -> dict[str, str]:
    """The row of ``identity`` in `provisioner status`'s GitHub credentials table."""
    done = subprocess.run(
        [sys.executable, "-m", "provisioner", "status", "--redis-url", pipeline.redis_url],
        env={**os.environ, **pipeline.env, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if "CREDENTIAL" in line)
    row = next((line for line in lines if identity in line), None)
    assert row is not None, done.stdout
    return dict(zip(_cells(header), _cells(row), strict=True))


def _cells(line: str) -> list[str]:
    """The cells of a line of a rich table (its header is drawn with heavier lines)."""
    return [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]


def _scale_to_zero_without_leaks(pipeline: Pipeline) -> None:
    for name in (A, B):
        pipeline.scale(name, 0)
    for name in (A, B):
        pipeline.wait_for_runners(0, name, timeout=90)
    assert pipeline.ghsim.admin.registrations() == []


def test_a_throttled_tenant_costs_the_other_nothing(pipeline):
    _start_tenants(pipeline)
    alone = _b_alone(pipeline)
    pipeline.ghsim.admin.throttle_credential(
        token=TOKEN_A, status=429, retry_after_s=30, endpoint="generate-jitconfig"
    )
    pipeline.scale(A, RUNNERS)
    wait_until(lambda: _calls_of_a(pipeline, 429), 30, "GitHub throttling A")

    _assert_b_unaffected(pipeline, alone, "throttled")
    identity = PatCredentials(TOKEN_A).identity
    row = _credential_row(pipeline, identity)
    assert row["PAUSED"] != "-" and int(row["THROTTLED"]) >= 1, row
    throttled = wait_until(
        lambda: _holding(pipeline, A, "Throttled"), 40, "A's Throttled condition"
    )
    assert identity in throttled["message"], throttled
    assert pipeline.count(A).registrations == 0
    _scale_to_zero_without_leaks(pipeline)


def test_a_revoked_tenant_costs_the_other_nothing_and_recovers_once_its_secret_is_fixed(
    pipeline,
):
    _start_tenants(pipeline)
    alone = _b_alone(pipeline)
    pipeline.ghsim.admin.revoke_credential(token=TOKEN_A)
    pipeline.scale(A, RUNNERS)
    wait_until(lambda: _calls_of_a(pipeline, 401), 30, "GitHub rejecting A")

    _assert_b_unaffected(pipeline, alone, "revoked")
    degraded = wait_until(
        lambda: _holding(pipeline, A, "Degraded"),
        30,
        "A's Degraded condition",
    )
    assert degraded["reason"] == "GitHubCredentialsRejected", degraded
    assert f"Secret {pipeline.namespace}/{A}-github" in degraded["message"], degraded
    # While it stays revoked, A's credential is only probed now and then.
    before = _calls_of_a(pipeline)
    time.sleep(40)
    probes = _calls_of_a(pipeline) - before
    print(f"calls with A's revoked credential in 40s: {probes}")
    assert probes <= 5, probes
    assert pipeline.count(A).registrations == 0

    # The user rotates the token in A's Secret; A recovers by itself.
    k8s.CoreV1Api(pipeline.kube_api).patch_namespaced_secret(
        f"{A}-github", pipeline.namespace, {"data": _secret_data(GHSIM_THIRD_TOKEN)}
    )
    fixed = time.monotonic()
    pipeline.wait_for_runners(RUNNERS, A, timeout=90)
    recovered = time.monotonic() - fixed
    print(f"A's 50 runners {recovered:.1f}s after its Secret was fixed")
    assert recovered < 60, recovered
    _scale_to_zero_without_leaks(pipeline)


def test_a_slow_tenant_costs_the_other_nothing(pipeline):
    """A's hung calls hold A's own share of the creations and nothing of the global ceiling,
    which covers only the Kubernetes writes: B does not wait for A's calls to time out or
    for their slots to lapse."""
    _start_tenants(pipeline)
    alone = _b_alone(pipeline)
    # Each of A's calls takes longer than a runner's whole creation may (20 s here).
    timeout = float(pipeline.env["PROVISIONER_RUNNER_CREATION_TIMEOUT"])
    pipeline.ghsim.admin.slow_credential((timeout + 5) * 1000, token=TOKEN_A)
    pipeline.scale(A, RUNNERS)
    wait_until(lambda: (pipeline.scale_set(A).get("status") or {}).get("inFlight"), 30, "A's batch")
    time.sleep(1)  # A's first calls are on their way

    _assert_b_unaffected(pipeline, alone, "slow")
    pipeline.ghsim.admin.restore_credential(token=TOKEN_A)
    _scale_to_zero_without_leaks(pipeline)
