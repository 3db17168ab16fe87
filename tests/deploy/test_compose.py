"""compose.yaml is valid against the Compose specification's JSON schema, and its services are
wired the way the docs promise: scalable workers, health-gated start order, Flower behind basic
auth, settings that exist."""

from __future__ import annotations

import copy
import json
import re
from graphlib import TopologicalSorter
from pathlib import Path

import jsonschema
import pytest
import yaml

from provisioner.config import ENV_PREFIX, Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text())


@pytest.fixture
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def schema_errors(document: dict) -> list[str]:
    # The schema names draft 2019-09 by a URL jsonschema does not know; use that draft.
    validator = jsonschema.Draft201909Validator(SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_the_schema_is_the_compose_specification() -> None:
    assert SCHEMA["title"] == "Compose Specification"
    jsonschema.Draft201909Validator.check_schema(SCHEMA)
    assert SCHEMA["definitions"]["service"]["additionalProperties"] is False


def test_compose_yaml_is_valid(compose: dict) -> None:
    assert schema_errors(compose) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["services"]["worker"].update(contianer_name="typo"),
        lambda c: c["services"]["worker"]["depends_on"]["redis"].update(condition="ready"),
        lambda c: c["services"]["redis"]["healthcheck"].update(test={"cmd": "ping"}),
        lambda c: c.update(service={}),
    ],
    ids=["misspelt key", "unknown condition", "wrong type", "unknown top-level key"],
)
def test_a_broken_copy_is_refused(compose: dict, mutate) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert schema_errors(broken)


def test_workers_scale_with_no_fixed_names_or_host_ports(compose: dict) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["command"] == ["worker"]


def _dependencies(compose: dict) -> dict[str, dict[str, str]]:
    return {
        name: {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}
        for name, service in compose["services"].items()
    }


def test_start_order_is_gated_on_health(compose: dict) -> None:
    services = compose["services"]
    dependencies = _dependencies(compose)
    order = list(TopologicalSorter({k: set(v) for k, v in dependencies.items()}).static_order())
    for role in ("reconciler", "worker"):
        assert dependencies[role] == {
            "redis": "service_healthy",
            "ghsim": "service_healthy",
            "k3s": "service_healthy",
            "cluster-setup": "service_completed_successfully",
        }
        assert order.index(role) > order.index("cluster-setup") > order.index("k3s")
    for service, deps in dependencies.items():
        for dep, condition in deps.items():
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{service} waits on {dep}'s health"


def test_the_cluster_writes_a_kubeconfig_the_roles_read(compose: dict) -> None:
    services = compose["services"]
    assert services["k3s"]["privileged"] is True
    assert services["k3s"]["image"].startswith("rancher/k3s:")
    assert "kube:/output" in services["k3s"]["volumes"]
    for role in ("reconciler", "worker"):
        env = services[role]["environment"]
        mount = next(v for v in services[role]["volumes"] if v.startswith("kube:"))
        assert env["PROVISIONER_KUBECONFIG"].startswith(mount.split(":")[1] + "/")
    assert "/output/cluster.yaml" in services["cluster-setup"]["command"][0]


def test_flower_requires_its_credentials_and_is_published_on_loopback_only(
    compose: dict,
) -> None:
    flower = compose["services"]["flower"]
    # ${VAR:?message}: Compose refuses to start without it; there is no default to fall to.
    assert re.fullmatch(
        r"\$\{FLOWER_BASIC_AUTH:\?[^}]+\}", flower["environment"]["FLOWER_BASIC_AUTH"]
    )
    assert flower["ports"] == ["127.0.0.1:${FLOWER_PORT:-5555}:5555"]
    assert flower["command"] == ["flower", "--address", "0.0.0.0", "--port", "5555"]


def test_every_published_port_is_bound_to_loopback(compose: dict) -> None:
    published = [
        (name, str(port))
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    ]
    assert published
    for name, port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_redis_requires_the_password_every_process_is_given(compose: dict) -> None:
    services = compose["services"]
    required = re.compile(r"\$\{REDIS_PASSWORD:\?[^}]+\}")
    redis = services["redis"]
    assert (
        redis["command"][redis["command"].index("--requirepass") + 1]
        == (redis["environment"]["REDISCLI_AUTH"])
    )
    assert required.fullmatch(redis["environment"]["REDISCLI_AUTH"])
    for role in ("reconciler", "worker", "flower"):
        env = {**compose["x-provisioner"]["environment"], **services[role].get("environment", {})}
        assert required.fullmatch(env["PROVISIONER_REDIS_PASSWORD"]), role


def test_no_credential_has_a_default(compose: dict) -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert "admin:admin" not in text
    assert "K3S_TOKEN" not in compose["services"]["k3s"]["environment"]


def test_every_provisioner_variable_is_a_real_setting(compose: dict) -> None:
    known = {env_name(field) for field in Settings.model_fields}
    for name, service in compose["services"].items():
        for key in service.get("environment", {}):
            if key.startswith(ENV_PREFIX):
                assert key in known, f"{name}: {key} is not a setting"


def test_bind_mounts_and_named_volumes_exist(compose: dict) -> None:
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
