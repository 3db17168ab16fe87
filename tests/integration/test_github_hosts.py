"""Which GitHub a scale set talks to: github.com through the configured API URL, a GitHub
Enterprise Server through HOST/api/v3 when the operator allowed its host, and nowhere when
not (its token is never sent). Also: a spec the reconciler clamps says so."""

from __future__ import annotations

import base64
import contextlib
import time
from urllib.parse import urlsplit

import pytest
from kubernetes import client as k8s

from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration


def _apply(pipeline, name: str, replicas: int, **spec: object) -> None:
    with contextlib.suppress(k8s.exceptions.ApiException):
        k8s.CoreV1Api(pipeline.kube_api).create_namespaced_secret(
            pipeline.namespace,
            k8s.V1Secret(
                metadata={"name": f"{name}-github"},
                data={"github_token": base64.b64encode(pipeline.ghsim.token.encode()).decode()},
            ),
        )
    manifest = scale_set_manifest(name, replicas, 10)
    manifest["spec"].update(spec)
    pipeline.custom.create_namespaced_custom_object(
        GROUP, VERSION, pipeline.namespace, PLURAL, manifest
    )


def _condition(pipeline, name: str, kind: str) -> dict:
    status = pipeline.scale_set(name).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def test_an_allowed_enterprise_server_is_reached_at_its_api_v3(pipeline):
    host = urlsplit(pipeline.ghsim.url).netloc
    # The github.com API URL goes nowhere: every call must take the GHES route.
    pipeline.settings_env.update(
        {
            "PROVISIONER_GITHUB_API_URL": "http://127.0.0.1:9",
            "PROVISIONER_GITHUB_ALLOWED_HOSTS": host,
        }
    )
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    _apply(pipeline, "ghes", 3, githubConfigUrl=f"http://{host}/octo-org")

    pipeline.wait_for_runners(3, name="ghes", timeout=60)
    names = {r["name"] for r in pipeline.ghsim.admin.registrations()}
    assert len([n for n in names if n.startswith("ghes-")]) == 3


def test_a_host_not_allowed_gets_no_token_and_says_why(pipeline):
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    before = pipeline.ghsim.admin.counters()
    _apply(pipeline, "elsewhere", 3, githubConfigUrl="https://github.example.net/octo-org")

    degraded = wait_until(
        lambda: (
            _condition(pipeline, "elsewhere", "Degraded").get("status") == "True"
            and _condition(pipeline, "elsewhere", "Degraded")
        ),
        30,
        "Degraded on a host not allowed",
    )
    assert degraded["reason"] == "GitHubHostNotAllowed"
    assert "github.example.net" in degraded["message"]
    assert "--github-allowed-hosts" in degraded["message"]
    time.sleep(2)
    assert pipeline.count("elsewhere").pods == 0
    status = pipeline.scale_set("elsewhere").get("status") or {}
    assert not status.get("inFlight")
    # Not one call reached the configured GitHub with this scale set's token either.
    assert pipeline.ghsim.admin.counters()["total"] == before["total"]


def test_replicas_above_max_runners_are_clamped_and_the_status_says_so(pipeline):
    pipeline.start_workers(1)
    pipeline.start_reconciler()
    pipeline.apply_scale_set(name="runners", replicas=5, max_runners=2)

    pipeline.wait_for_runners(2, timeout=60)
    clamped = wait_until(
        lambda: (
            _condition(pipeline, "runners", "ReplicasClamped").get("status") == "True"
            and _condition(pipeline, "runners", "ReplicasClamped")
        ),
        20,
        "ReplicasClamped",
    )
    assert clamped["reason"] == "AboveMaxRunners"
    assert "spec.replicas is 5" in clamped["message"]
    assert "spec.maxRunners (2)" in clamped["message"]

    pipeline.scale("runners", 1)
    wait_until(
        lambda: _condition(pipeline, "runners", "ReplicasClamped").get("status") == "False",
        30,
        "ReplicasClamped back to False",
    )
