"""Creation stays correct when GitHub answers something unexpected, answers late, when a task is
delivered twice, or when the batch report cannot be written at first (issue 13, items 2, 6, 7
and 8b). Real kube-apiserver, redis-server, worker and reconciler processes, and the GitHub
simulator."""

from __future__ import annotations

import base64
import json
import time

import pytest
import redis
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.ledger import Ledger, LedgerEntry
from provisioner.runtime.queue import CREATE_RUNNER
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

JITCONFIG = "generate-jitconfig"


def _calls(counters: dict, endpoint: str) -> int:
    """Calls on every scope's variant of ``endpoint``, whatever their answer."""
    return sum(
        sum(int(n) for n in outcomes.values())
        for template, outcomes in counters["calls"].items()
        if endpoint in template
    )


def _condition(pipeline, type_: str) -> dict:
    conditions = (pipeline.scale_set().get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def _names(pipeline) -> tuple[set[str], set[str], set[str]]:
    """Registrations, Secrets and live Pods of the scale set ``runners``, by name."""
    core = k8s.CoreV1Api(pipeline.kube_api)
    selector = "provisioner.dev/scale-set=runners"
    pods = {
        p.metadata.name
        for p in core.list_namespaced_pod(pipeline.namespace, label_selector=selector).items
        if not p.metadata.deletion_timestamp
    }
    secrets = {
        s.metadata.name
        for s in core.list_namespaced_secret(pipeline.namespace, label_selector=selector).items
    }
    return pipeline.ghsim.runner_names(), secrets, pods


def _report_retries(pipeline) -> int:
    """Times a worker logged that the batch report failed and will be retried."""
    logs = "".join(w.log_path.read_text() for w in pipeline.workers.processes)
    return sum(
        1
        for line in logs.splitlines()
        if "provisioner.summarize_batch[" in line and " retry: " in line
    )


# Item 2: an answer that will not change with retries ends the creation, at a bounded cost.


@pytest.mark.chaos  # about 70 s: it watches the call rate for a minute
def test_a_runner_group_github_lacks_costs_a_handful_of_calls_and_says_what_to_check(pipeline):
    # The scale set asks for runner group 1, which this organisation does not have: every
    # generate-jitconfig is a 404. Retrying cannot fix it; only the user can.
    pipeline.ghsim.admin.configure(runner_group_ids=[7])
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=10)

    wait_until(
        lambda: _calls(pipeline.ghsim.admin.counters(), JITCONFIG) > 0, 30, "a first generate call"
    )
    started = time.monotonic()
    time.sleep(30)
    first_half_minute = _calls(pipeline.ghsim.admin.counters(), JITCONFIG)
    # The first batch (one call per runner: none is retried), then a probe per backoff.
    assert first_half_minute <= 10 + 3, pipeline.ghsim.admin.counters()["calls"]

    events = [e.message for e in pipeline.events()]
    assert any("runnerGroupId" in m and "githubConfigUrl" in m for m in events), events
    degraded = _condition(pipeline, "Degraded")
    assert degraded.get("status") == "True", degraded
    assert "runnerGroupId" in degraded["message"], degraded
    # Each failed creation was rolled back: nothing exists anywhere.
    assert _names(pipeline) == (set(), set(), set())

    # While the cause persists, a handful of calls a minute.
    time.sleep(max(0.0, 60 - (time.monotonic() - started)))
    next_half_minute = _calls(pipeline.ghsim.admin.counters(), JITCONFIG) - first_half_minute
    assert next_half_minute <= 3, next_half_minute
    assert _names(pipeline) == (set(), set(), set())
    assert pipeline.scale_set()["status"]["failedCreations"] >= 10


# Item 6: a redelivery beside a first attempt that outlives the old lock's TTL.


def _jit_runner(encoded: str) -> dict:
    """The `.runner` file a runner would write from its JIT config (the simulator's shape:
    base64 JSON of base64 JSON files)."""
    files = json.loads(base64.b64decode(encoded))
    return json.loads(base64.b64decode(files[".runner"]))


def test_a_redelivered_task_beside_a_live_first_attempt_keeps_the_first_runner(pipeline, send_task):
    creation_timeout = 5
    old_lock_ttl = creation_timeout + 10  # before the fix: never renewed, then free
    slow_answer_s = old_lock_ttl + 7
    pipeline.settings_env.update(
        PROVISIONER_RUNNER_CREATION_TIMEOUT=str(creation_timeout),
        PROVISIONER_GITHUB_REQUEST_TIMEOUT=str(slow_answer_s + 30),
    )
    pipeline.start_workers(2)
    scale_set = pipeline.apply_scale_set(replicas=0)
    fields = {
        "scale_set": f"{pipeline.namespace}/runners",
        "name": "runners-twice",
        "batch_id": "batch-1",
        "deadline": time.time() + 120,
    }
    if "owner_uid" in LedgerEntry.__dataclass_fields__:
        fields["owner_uid"] = scale_set["metadata"]["uid"]
    entry = LedgerEntry(**fields)
    Ledger(redis.Redis.from_url(pipeline.redis_url)).record([entry])

    # The first attempt's registration is made at once, its answer arrives late.
    pipeline.ghsim.admin.configure(
        slow_rate=1.0,
        slow_ms=slow_answer_s * 1000,
        fault_endpoint=JITCONFIG,
        faults_take_effect=True,
    )
    first = send_task(CREATE_RUNNER, [entry.to_dict(), None])
    registered = wait_until(pipeline.ghsim.admin.registrations, 30, "the first registration")
    pipeline.ghsim.admin.configure(slow_rate=0.0)
    # The redelivery (as after a visibility timeout) while the first attempt still waits.
    second = send_task(CREATE_RUNNER, [entry.to_dict(), None])
    results = [first.get(timeout=90), second.get(timeout=90)]

    assert results[0]["seconds"] > old_lock_ttl, results[0]
    assert sorted(r["outcome"] for r in results) == ["created", "skipped"], results
    names = _names(pipeline)
    assert names == ({"runners-twice"},) * 3, names
    # What exists is the first attempt's work, consistent end to end: the registration it
    # made, and the Pod's Secret holding that registration's JIT config.
    (registration,) = pipeline.ghsim.admin.registrations()
    assert registration["id"] == registered[0]["id"]
    core = k8s.CoreV1Api(pipeline.kube_api)
    pod = core.read_namespaced_pod("runners-twice", pipeline.namespace)
    runner = next(c for c in pod.spec.containers if c.name == "runner")
    env = next(e for e in runner.env if e.name == "ACTIONS_RUNNER_INPUT_JITCONFIG")
    secret = core.read_namespaced_secret(env.value_from.secret_key_ref.name, pipeline.namespace)
    jit = base64.b64decode(secret.data["jitconfig"]).decode()
    assert _jit_runner(jit)["agentId"] == registration["id"]
    assert _jit_runner(jit)["agentName"] == "runners-twice"


# Item 7: the batch report survives API errors.


def _deny_in_namespace(custom_api: k8s.ApiClient, name: str, namespace: str, rule: dict) -> None:
    """A ValidatingAdmissionPolicy and binding refusing ``rule``'s requests in ``namespace``."""
    custom = k8s.CustomObjectsApi(custom_api)
    group, version = "admissionregistration.k8s.io", "v1"
    custom.create_cluster_custom_object(
        group,
        version,
        "validatingadmissionpolicies",
        {
            "apiVersion": f"{group}/{version}",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [rule]},
                "validations": [{"expression": "false", "message": f"refused by test ({name})"}],
            },
        },
    )
    custom.create_cluster_custom_object(
        group,
        version,
        "validatingadmissionpolicybindings",
        {
            "apiVersion": f"{group}/{version}",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )


def _allow_again(api: k8s.ApiClient, name: str) -> None:
    custom = k8s.CustomObjectsApi(api)
    group, version = "admissionregistration.k8s.io", "v1"
    custom.delete_cluster_custom_object(group, version, "validatingadmissionpolicybindings", name)
    custom.delete_cluster_custom_object(group, version, "validatingadmissionpolicies", name)


def _refused(write) -> bool:
    try:
        write()
    except ApiException as exc:
        return exc.status in (400, 403, 422)
    return False


def test_a_batch_report_refused_by_the_api_server_lands_once_it_is_accepted(pipeline):
    core = k8s.CoreV1Api(pipeline.kube_api)
    custom = pipeline.custom
    ns = pipeline.namespace
    # Two of five runners fail (a pod quota of 3), so a report counted twice would show.
    core.create_namespaced_resource_quota(
        ns, k8s.V1ResourceQuota(metadata={"name": "pods"}, spec={"hard": {"pods": "3"}})
    )
    core.patch_namespaced_resource_quota_status(
        "pods", ns, {"status": {"hard": {"pods": "3"}, "used": {"pods": "0"}}}
    )
    # Slow enough creations that the refusals are in place before the batch ends.
    pipeline.settings_env.update(PROVISIONER_RUNNER_CREATION_TIMEOUT="10")
    pipeline.ghsim.admin.configure(latency_ms=1000)
    pipeline.start_workers(1)
    reconciler = pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=5)
    wait_until(
        lambda: _condition(pipeline, "ScalingUp").get("status") == "True", 30, "ScalingUp=True"
    )
    # Only the batch's own report may set ScalingUp back to False from here on.
    reconciler.stop(timeout=15)

    status_policy, events_policy = f"{ns}-status", f"{ns}-events"
    _deny_in_namespace(
        pipeline.kube_api,
        status_policy,
        ns,
        {
            "apiGroups": [GROUP],
            "apiVersions": ["*"],
            "resources": [f"{PLURAL}/status"],
            "operations": ["UPDATE"],
        },
    )
    _deny_in_namespace(
        pipeline.kube_api,
        events_policy,
        ns,
        {
            "apiGroups": ["", "events.k8s.io"],
            "apiVersions": ["*"],
            "resources": ["events"],
            "operations": ["CREATE"],
        },
    )
    try:
        probe_event = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(generate_name="probe-"),
            involved_object=k8s.V1ObjectReference(kind="ConfigMap", name="probe", namespace=ns),
            reason="Probe",
            message="probe",
        )
        wait_until(
            lambda: (
                _refused(
                    lambda: custom.patch_namespaced_custom_object_status(
                        GROUP, VERSION, ns, PLURAL, "runners", {"status": {}}
                    )
                )
                and _refused(lambda: core.create_namespaced_event(ns, probe_event))
            ),
            20,
            "the refusals to take effect",
        )
        assert "lastBatch" not in pipeline.scale_set()["status"], "the batch ended too soon"

        # The batch ends; its report is refused and retried.
        wait_until(
            lambda: _report_retries(pipeline) >= 1,
            60,
            "the batch report to be refused and retried",
        )
        assert "lastBatch" not in (pipeline.scale_set().get("status") or {})

        # Status writes accepted again, Events not yet: the status lands, the report is
        # retried for its Event, and counts the batch's failures once.
        _allow_again(pipeline.kube_api, status_policy)
        status_policy = ""
        batch = wait_until(
            lambda: (pipeline.scale_set().get("status") or {}).get("lastBatch"),
            90,
            "the batch's status",
        )
        assert (batch["created"], batch["failed"]) == (3, 2), batch
        retries_before = _report_retries(pipeline)
        wait_until(
            lambda: _report_retries(pipeline) > retries_before,
            90,
            "the report retried for its Event",
        )
    finally:
        for policy in (status_policy, events_policy):
            if policy:
                _allow_again(pipeline.kube_api, policy)

    message = "Created 3/5 runners; 2 failed: quota exceeded"
    wait_until(lambda: message in [e.message for e in pipeline.events()], 90, "the batch's Event")
    status = pipeline.scale_set()["status"]
    assert status["lastBatch"]["id"] == batch["id"]
    assert status["failedCreations"] == 2, status
    scaling_up = _condition(pipeline, "ScalingUp")
    assert (scaling_up["status"], scaling_up["reason"]) == ("False", "BatchFinished")
    assert [e.message for e in pipeline.events()].count(message) == 1


# Item 8(b): registrations made by calls that answer after the client gave up.


@pytest.mark.chaos  # about 65 s with its workers' start
def test_late_answers_to_generate_jitconfig_converge_with_nothing_left_for_gc(pipeline):
    desired = 100
    creation_timeout = 20
    # The default timeout: a late answer keeps a creation waiting that long.
    request_timeout = 10
    pipeline.settings_env.update(
        PROVISIONER_GITHUB_REQUEST_TIMEOUT=str(request_timeout),
        PROVISIONER_RUNNER_CREATION_TIMEOUT=str(creation_timeout),
    )
    # One answer in five comes after the client's timeout, though the runner was registered;
    # left on for the whole test.
    pipeline.ghsim.admin.configure(
        slow_rate=0.2,
        slow_ms=(request_timeout + 2) * 1000,
        fault_endpoint=JITCONFIG,
        faults_take_effect=True,
    )
    pipeline.start_workers(2)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=desired)

    def converged() -> bool:
        registrations, secrets, pods = _names(pipeline)
        in_flight = (pipeline.scale_set().get("status") or {}).get("inFlight", 0)
        return registrations == secrets == pods and len(pods) == desired and in_flight == 0

    # A runner needs 1.25 calls on average; one that meets a late answer retries within its
    # deadline, and one that meets two in a row runs out of it and is planned anew at once. The
    # first round alone keeps the ten creations at once busy for 25 s or more (a fifth of the
    # calls wait out the 10 s timeout, and a creation's deadline runs while it waits for its
    # turn); each round that plans an unlucky runner anew adds up to a deadline. Converging
    # took 34 to 54 s here in six runs, and over 60 s once on CI. The bound tells a fleet that
    # converges from one that never does (budgets collapsing, registrations left for GC), not
    # how fast: eight deadlines.
    wait_until(converged, 8 * creation_timeout, f"{desired} runners, all parts by name")
    assert pipeline.ghsim.admin.counters()["slow"] > 0
    registrations, secrets, pods = _names(pipeline)
    assert registrations == secrets == pods and len(pods) == desired
