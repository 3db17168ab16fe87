"""Two RunnerScaleSets named `runners` in two namespaces, registering into one organisation,
share the runner name prefix: neither's garbage collection nor its conflict recovery may
touch the other's registrations (ownership is the RunnerScaleSet's uid, not the name)."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import time
import uuid

import pytest
import redis
from kubernetes import client as k8s

from provisioner.config import load_settings
from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.github import GitHubClient, GitHubScope
from provisioner.github.auth import PatCredentials
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.scaleset import ScaleSetStore
from provisioner.ledger import Ledger, LedgerEntry
from provisioner.naming import owner_label
from provisioner.reconciler.gc import GarbageCollector
from provisioner.runtime import Runtime
from provisioner.runtime.queue import CREATE_RUNNER
from tests.fixtures.pipeline import TestPipeline as Pipeline

pytestmark = pytest.mark.integration

ORG_URL = "https://github.com/octo-org"
NAME = "runners"


def _apply(pipeline: Pipeline, namespace: str, replicas: int) -> dict:
    """The scale set `runners` in ``namespace``, registering into the organisation."""
    core = k8s.CoreV1Api(pipeline.kube_api)
    token = base64.b64encode(pipeline.ghsim.token.encode()).decode()
    with contextlib.suppress(k8s.exceptions.ApiException):
        core.create_namespaced_secret(
            namespace,
            k8s.V1Secret(metadata={"name": f"{NAME}-github"}, data={"github_token": token}),
        )
    manifest = scale_set_manifest(NAME, replicas, None)
    manifest["spec"]["githubConfigUrl"] = ORG_URL
    return pipeline.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest
    )


def _label_names(registration: dict) -> set[str]:
    return {label["name"] if isinstance(label, dict) else label for label in registration["labels"]}


def _registrations_of(pipeline: Pipeline, uid: str) -> dict[str, int]:
    """Name -> id of the registrations carrying the owner label of scale set ``uid``."""
    return {
        r["name"]: r["id"]
        for r in pipeline.ghsim.admin.registrations()
        if owner_label(uid) in _label_names(r)
    }


def _pods(pipeline: Pipeline, namespace: str) -> set[str]:
    pods = k8s.CoreV1Api(pipeline.kube_api).list_namespaced_pod(
        namespace, label_selector=f"provisioner.dev/scale-set={NAME}"
    )
    return {p.metadata.name for p in pods.items}


def _wait_for(pipeline: Pipeline, namespace: str, uid: str, count: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        registered = set(_registrations_of(pipeline, uid))
        pods = _pods(pipeline, namespace)
        if len(pods) == count and registered == pods:
            return
        time.sleep(0.3)
    raise AssertionError(
        f"{namespace}: {len(_pods(pipeline, namespace))} pods, "
        f"{len(_registrations_of(pipeline, uid))} registrations; wanted {count}"
    )


def _gc(pipeline: Pipeline, namespace: str, *args: str) -> set[str]:
    """``provisioner gc --namespace NAMESPACE ARGS``: the registrations it names."""
    done = subprocess.run(
        [sys.executable, "-m", "provisioner", "gc", "--namespace", namespace, *args],
        env={**os.environ, **pipeline.env, "PROVISIONER_NAMESPACE": namespace},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return {
        line.split()[-1]
        for line in done.stdout.splitlines()
        if line.startswith(("would remove registration ", "removed registration "))
    }


@pytest.fixture
def second_namespace(kube_api) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    k8s.CoreV1Api(kube_api).create_namespace(k8s.V1Namespace(metadata={"name": name}))
    return name


def test_same_named_scale_sets_in_one_organisation_keep_to_their_own_runners(
    pipeline, second_namespace
):
    first, second = pipeline.namespace, second_namespace
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.start_reconciler(env={"PROVISIONER_NAMESPACE": second}, lease_namespace=second)
    uid_first = _apply(pipeline, first, 12)["metadata"]["uid"]
    uid_second = _apply(pipeline, second, 15)["metadata"]["uid"]

    _wait_for(pipeline, first, uid_first, 12)
    _wait_for(pipeline, second, uid_second, 15)
    theirs = _registrations_of(pipeline, uid_second)
    ours = _registrations_of(pipeline, uid_first)
    # A real leftover of the first scale set: its owner label and name pattern, no pod.
    with GitHubClient(pipeline.ghsim.url, PatCredentials(pipeline.ghsim.token)) as github:
        github.generate_jitconfig(
            GitHubScope.parse(ORG_URL), f"{NAME}-left0", 1, ["self-hosted", owner_label(uid_first)]
        )

    # Each dry run names its own leftover at most, never a runner of the other.
    assert _gc(pipeline, first, "--dry-run") == {f"{NAME}-left0"}
    assert _gc(pipeline, second, "--dry-run") == set()

    assert _gc(pipeline, first, "--grace-seconds", "0") == {f"{NAME}-left0"}
    assert _registrations_of(pipeline, uid_second) == theirs
    assert _registrations_of(pipeline, uid_first) == ours
    assert _pods(pipeline, second) == set(theirs)


def test_a_creation_never_deletes_another_scale_sets_registration_of_that_name(
    pipeline, second_namespace, send_task
):
    first, second = pipeline.namespace, second_namespace
    pipeline.start_workers(1)
    pipeline.start_reconciler(env={"PROVISIONER_NAMESPACE": second}, lease_namespace=second)
    # The first scale set has no reconciler here: its one runner is planned by hand below.
    _apply(pipeline, first, 0)
    uid_second = _apply(pipeline, second, 3)["metadata"]["uid"]
    _wait_for(pipeline, second, uid_second, 3)
    theirs = _registrations_of(pipeline, uid_second)

    # The first scale set plans a runner whose name the second's runner already has (the
    # names are random; two scale sets with one prefix can draw the same).
    taken = sorted(theirs)[0]
    entry = LedgerEntry(f"{first}/{NAME}", taken, "batch-collide", time.time() + 120)
    Ledger(redis.Redis.from_url(pipeline.redis_url)).record([entry])
    result = send_task(CREATE_RUNNER, [entry.to_dict(), None]).get(timeout=60)

    assert (result["outcome"], result["reason"]) == (
        "failed",
        "runner name taken by another scale set",
    )
    assert _registrations_of(pipeline, uid_second) == theirs
    assert _pods(pipeline, second) == set(theirs)
    assert _pods(pipeline, first) == set()


def test_interleaved_gc_passes_of_two_namespaces_each_collect_their_own_leftovers(
    pipeline, second_namespace
):
    """Two reconcilers (one per namespace) share Redis: one's pass must not forget when the
    other first saw its leftovers, or neither ever outlives the grace period."""
    first, second = pipeline.namespace, second_namespace
    uids = {ns: _apply(pipeline, ns, 0)["metadata"]["uid"] for ns in (first, second)}
    with GitHubClient(pipeline.ghsim.url, PatCredentials(pipeline.ghsim.token)) as github:
        for ns, leftover in ((first, "left1"), (second, "left2")):
            github.generate_jitconfig(
                GitHubScope.parse(ORG_URL), f"{NAME}-{leftover}", 1, [owner_label(uids[ns])]
            )
    clock = [1000.0]
    runtimes = {
        ns: Runtime(load_settings({**_settings(pipeline), "namespace": ns}))
        for ns in (first, second)
    }
    try:
        collectors = {
            ns: GarbageCollector(runtime, grace=60, clock=lambda: clock[0])
            for ns, runtime in runtimes.items()
        }
        removed: dict[str, list[str]] = {first: [], second: []}
        for _ in range(2):
            for ns, collector in collectors.items():
                scale_sets = ScaleSetStore(runtimes[ns].api).list(ns)
                removed[ns] += collector.collect(scale_sets).registrations
            clock[0] += 61
    finally:
        for runtime in runtimes.values():
            runtime.close()

    assert removed == {first: [f"{NAME}-left1"], second: [f"{NAME}-left2"]}
    assert pipeline.ghsim.admin.registrations() == []


def _settings(pipeline: Pipeline) -> dict[str, str]:
    return {
        "kubeconfig": pipeline.kubeconfig,
        "redis_url": pipeline.redis_url,
        "github_api_url": pipeline.ghsim.url,
    }
