"""A garbage-collection pass against the real servers: scale sets registering into one
organisation share one listing of its registrations per credential, not one per scale set, and
each still loses its leftovers and nothing that is another's; a runner whose creation starts
during the pass is not taken for a leftover, even with no grace period."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from kubernetes import client as k8s

from provisioner.config import load_settings
from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.github import GitHubClient, GitHubScope
from provisioner.github.auth import PatCredentials
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.runner_objects import RunnerObjects
from provisioner.kube.scaleset import ScaleSet
from provisioner.ledger import Ledger, LedgerEntry
from provisioner.naming import owner_label
from provisioner.reconciler.gc import GarbageCollector
from provisioner.runtime import Runtime
from tests.fixtures.ghsim import GHSIM_SECOND_TOKEN, GHSIM_TOKEN
from tests.fixtures.pipeline import TestPipeline as Pipeline

pytestmark = pytest.mark.integration

ORG_URL = "https://github.com/octo-org"
LISTING = "GET /orgs/{org}/actions/runners"
# Each with its own Secret, all holding one PAT: one credential.
SHARING_ONE_TOKEN = ("alpha", "beta", "gamma")
# The same organisation through another PAT, which may see other registrations.
OTHER_TOKEN = "delta"
JIT = "ZW5jb2RlZC1qaXQtY29uZmln"
# Another install's same-named scale set, registering into the organisation too.
FOREIGN_UID = "0f0f0f0f-0000-4000-8000-000000000000"


def _apply(pipeline: Pipeline, name: str, token: str) -> ScaleSet:
    secret = k8s.V1Secret(
        metadata={"name": f"{name}-github"},
        data={"github_token": base64.b64encode(token.encode()).decode()},
    )
    k8s.CoreV1Api(pipeline.kube_api).create_namespaced_secret(pipeline.namespace, secret)
    manifest = scale_set_manifest(name, 0, None)
    manifest["spec"]["githubConfigUrl"] = ORG_URL
    obj = pipeline.custom.create_namespaced_custom_object(
        GROUP, VERSION, pipeline.namespace, PLURAL, manifest
    )
    return ScaleSet.from_object(obj)


def _register(pipeline: Pipeline, token: str, name: str, owner_uid: str) -> None:
    with GitHubClient(pipeline.ghsim.url, PatCredentials(token)) as github:
        github.generate_jitconfig(GitHubScope.parse(ORG_URL), name, 1, [owner_label(owner_uid)])


def _leave_things(pipeline: Pipeline, scale_set: ScaleSet, token: str) -> None:
    """A whole runner (kept), a registration and a Secret with no pod (leftovers), and a
    registration of the same name pattern that another install's scale set owns."""
    objects = RunnerObjects(pipeline.kube_api, pipeline.namespace)
    name = scale_set.name
    _register(pipeline, token, f"{name}-whole", scale_set.uid)
    assert objects.create_secret(scale_set, f"{name}-whole", JIT)
    assert objects.create_pod(scale_set, f"{name}-whole")
    _register(pipeline, token, f"{name}-left1", scale_set.uid)
    assert objects.create_secret(scale_set, f"{name}-left2", JIT)
    _register(pipeline, token, f"{name}-forgn", FOREIGN_UID)


def _runtime(pipeline: Pipeline) -> Runtime:
    return Runtime(
        load_settings(
            {
                "kubeconfig": pipeline.kubeconfig,
                "redis_url": pipeline.redis_url,
                "github_api_url": pipeline.ghsim.url,
                "namespace": pipeline.namespace,
            }
        )
    )


def _listings(pipeline: Pipeline) -> int:
    """The organisation's runner listings the simulator has answered."""
    return sum(pipeline.ghsim.admin.counters()["calls"].get(LISTING, {}).values())


def test_one_pass_lists_a_shared_scope_once_per_credential_and_keeps_to_each_scale_sets_own(
    pipeline,
):
    tokens = {name: GHSIM_TOKEN for name in SHARING_ONE_TOKEN} | {OTHER_TOKEN: GHSIM_SECOND_TOKEN}
    scale_sets = [_apply(pipeline, name, token) for name, token in tokens.items()]
    for scale_set in scale_sets:
        _leave_things(pipeline, scale_set, tokens[scale_set.name])
    runtime = _runtime(pipeline)
    before = _listings(pipeline)
    try:
        report = GarbageCollector(runtime, grace=0).collect(scale_sets)
    finally:
        runtime.close()

    assert _listings(pipeline) - before == 2  # one a credential, not one a scale set
    assert sorted(report.registrations) == sorted(f"{name}-left1" for name in tokens)
    assert sorted(report.secrets) == sorted(f"{name}-left2" for name in tokens)
    registered = {r["name"] for r in pipeline.ghsim.admin.registrations()}
    assert registered == {f"{name}-{kept}" for name in tokens for kept in ("whole", "forgn")}
    objects = RunnerObjects(pipeline.kube_api, pipeline.namespace)
    for scale_set in scale_sets:
        whole = {f"{scale_set.name}-whole"}
        assert objects.runner_pod_names(scale_set.name) == whole
        assert objects.runner_secret_owners(scale_set.name) == dict.fromkeys(whole, scale_set.uid)


class CreationDuringListing:
    """Right before the simulator answers the first listing of runners, a creation starts as
    the workers make one: its ledger entry is written, then it registers."""

    def __init__(self, pipeline: Pipeline, ghsim_server, scale_set: ScaleSet, name: str) -> None:
        self.pipeline = pipeline
        self.scale_set = scale_set
        self.name = name
        self._handle = ghsim_server.simulator.handle
        self.fired = False

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes):
        url = urlsplit(target)
        listing = (
            method == "GET"
            and url.path.endswith("/actions/runners")
            and "name" not in parse_qs(url.query)
        )
        if listing and not self.fired:
            self.fired = True
            entry = LedgerEntry(
                self.scale_set.key, self.name, "batch-1", time.time() + 120, self.scale_set.uid
            )
            Ledger(redis.Redis.from_url(self.pipeline.redis_url)).record([entry])
            _register(self.pipeline, GHSIM_TOKEN, self.name, self.scale_set.uid)
        return self._handle(method, target, headers, body)


def test_a_runner_being_created_during_a_pass_with_no_grace_is_kept(
    pipeline, ghsim_server, monkeypatch
):
    scale_set = _apply(pipeline, "runners", GHSIM_TOKEN)
    _register(pipeline, GHSIM_TOKEN, "runners-left1", scale_set.uid)
    creation = CreationDuringListing(pipeline, ghsim_server, scale_set, "runners-new01")
    monkeypatch.setattr(ghsim_server.simulator, "handle", creation.handle)
    runtime = _runtime(pipeline)
    try:
        report = GarbageCollector(runtime, grace=0).collect([scale_set])
    finally:
        runtime.close()

    assert creation.fired
    assert report.registrations == ["runners-left1"]
    assert {r["name"] for r in pipeline.ghsim.admin.registrations()} == {"runners-new01"}


def test_a_scale_set_whose_credential_is_revoked_does_not_stop_the_others_collection(pipeline):
    revoked = _apply(pipeline, "alpha", GHSIM_TOKEN)
    healthy = _apply(pipeline, "delta", GHSIM_SECOND_TOKEN)
    _leave_things(pipeline, revoked, GHSIM_TOKEN)
    _leave_things(pipeline, healthy, GHSIM_SECOND_TOKEN)
    pipeline.ghsim.admin.revoke_credential(token=GHSIM_TOKEN)
    runtime = _runtime(pipeline)
    try:
        report = GarbageCollector(runtime, grace=0).collect([revoked, healthy])
    finally:
        runtime.close()
        pipeline.ghsim.admin.restore_credential(token=GHSIM_TOKEN)

    assert report.skipped == [revoked.key]
    assert report.registrations == ["delta-left1"]
    assert report.secrets == ["delta-left2"]
    registered = {r["name"] for r in pipeline.ghsim.admin.registrations()}
    assert "alpha-left1" in registered and "delta-left1" not in registered
    objects = RunnerObjects(pipeline.kube_api, pipeline.namespace)
    assert "alpha-left2" in objects.runner_secret_owners("alpha")
