"""Settings: defaults, environment, flags, and the one-line refusal of a bad value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from provisioner.cli.flags import add_settings_flags
from provisioner.config import ENVIRONMENT_ONLY, Settings, SettingsError, load_settings


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")}
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
    )


def test_defaults_match_the_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("PROVISIONER_"):
            monkeypatch.delenv(key)
    settings = Settings()
    assert settings.runner_creation_concurrency == 10
    assert settings.runner_creation_timeout == 30.0
    assert settings.parallel_creation is True
    # On since the benchmark showed it helps under throttling (docs/performance.md).
    assert settings.adaptive_concurrency is True


def test_environment_is_read_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISIONER_RUNNER_CREATION_CONCURRENCY", "25")
    monkeypatch.setenv("PROVISIONER_PARALLEL_CREATION", "false")
    assert load_settings().runner_creation_concurrency == 25
    assert load_settings().parallel_creation is False
    assert load_settings({"runner_creation_concurrency": "40"}).runner_creation_concurrency == 40


def test_every_setting_has_a_flag() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    flags = {opt for action in parser._actions for opt in action.option_strings}
    for field in Settings.model_fields:
        # A secret on the command line shows in the process list: environment only.
        wanted = field not in ENVIRONMENT_ONLY
        assert ("--" + field.replace("_", "-") in flags) == wanted, field


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    original = load_settings({"runner_creation_concurrency": "7", "parallel_creation": False})
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["--runner-creation-concurrency", "0"], {}, ["--runner-creation-concurrency", ">= 1"]),
        ([], {"PROVISIONER_RUNNER_CREATION_TIMEOUT": "abc"}, ["--runner-creation-timeout", "> 0"]),
        (["--log-level", "loud"], {}, ["--log-level", "DEBUG, INFO"]),
        (["--redis-url", "http://x"], {}, ["--redis-url", "redis://"]),
        (
            ["--retry-backoff-base", "60", "--retry-backoff-max", "5"],
            {},
            ["--retry-backoff-base", "--retry-backoff-max"],
        ),
    ],
)
def test_a_bad_value_exits_non_zero_with_one_line_naming_it(
    args: list[str], env: dict[str, str], names: list[str]
) -> None:
    result = run_cli("config", *args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0]


def test_config_prints_the_effective_settings() -> None:
    result = run_cli("config", "--no-parallel-creation", env={"PROVISIONER_GITHUB_BURST": "7"})
    assert result.returncode == 0, result.stderr
    assert "PROVISIONER_PARALLEL_CREATION=false" in result.stdout.splitlines()
    assert "PROVISIONER_GITHUB_BURST=7" in result.stdout.splitlines()


def test_load_settings_raises_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="--github-burst"):
        load_settings({"github_burst": "-1"})


# Every process refuses settings it could not work with, at start, in one line, exit 2.
PROCESS_COMMANDS = [
    ["reconciler"],
    ["worker"],
    ["webhook"],
    ["gc", "--dry-run"],
    ["flower"],
    ["scale", "example", "--replicas", "1"],
    ["status"],
    ["config"],
]
UNUSABLE_SETTINGS = {
    "missing kubeconfig": (
        {"PROVISIONER_KUBECONFIG": "/nonexistent/kubeconfig.yaml"},
        ["--kubeconfig", "PROVISIONER_KUBECONFIG", "/nonexistent/kubeconfig.yaml"],
    ),
    "non-numeric Redis port": (
        {"PROVISIONER_REDIS_URL": "redis://:hunter2@redis:sixty/0"},
        ["--redis-url", "PROVISIONER_REDIS_URL", "port"],
    ),
    "namespace not a DNS-1123 label": (
        {"PROVISIONER_NAMESPACE": "Runners_Prod"},
        ["--namespace", "PROVISIONER_NAMESPACE", "DNS-1123"],
    ),
}


@pytest.mark.parametrize("command", PROCESS_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("case", list(UNUSABLE_SETTINGS))
def test_every_process_refuses_unusable_settings_with_one_line_and_exit_2(
    command: list[str], case: str
) -> None:
    env, names = UNUSABLE_SETTINGS[case]
    result = run_cli(*command, env={**env, "PROVISIONER_WEBHOOK_SECRET": "x" * 32})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0]
    assert "hunter2" not in result.stderr


def test_an_unreadable_or_foreign_kubeconfig_is_refused(tmp_path) -> None:
    not_yaml = tmp_path / "binary"
    not_yaml.write_bytes(b"\xff\xfe{{{")
    not_kube = tmp_path / "other.yaml"
    not_kube.write_text("just: a mapping\n")
    for path, why in [(not_yaml, "not a kubeconfig"), (not_kube, "no clusters"), (tmp_path, "")]:
        with pytest.raises(SettingsError, match="--kubeconfig") as raised:
            load_settings({"kubeconfig": str(path)})
        assert why in str(raised.value)


def test_a_worker_with_no_kubernetes_configuration_at_all_exits_2(tmp_path) -> None:
    # No --kubeconfig, not in a cluster, and no ~/.kube/config: nothing to create runners with.
    result = run_cli("worker", env={"HOME": str(tmp_path), "KUBECONFIG": ""})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "--kubeconfig (PROVISIONER_KUBECONFIG)" in line


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("redis://redis.runner-provisioner.svc:6379/0", True),
        ("rediss://redis:6380/1?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem", True),
        ("unix:///run/redis.sock?db=0", True),
        ("redis://redis:6379", True),
        ("redis://redis:port/0", False),
        ("redis://redis:70000/0", False),
        ("redis:///0", False),
        ("redis://redis:6379/zero", False),
        ("unix://", False),
    ],
)
def test_redis_urls_are_parsed(url: str, accepted: bool) -> None:
    if accepted:
        assert load_settings({"redis_url": url}).redis_url == url
    else:
        with pytest.raises(SettingsError, match="--redis-url"):
            load_settings({"redis_url": url})


@pytest.mark.parametrize(
    ("name", "accepted"),
    [("runners", True), ("team-a-1", True), ("a" * 63, True), ("-x", False), ("a" * 64, False)],
)
def test_namespace_names_are_dns_labels(name: str, accepted: bool) -> None:
    if accepted:
        assert load_settings({"namespace": name}).namespace == name
    else:
        with pytest.raises(SettingsError, match="--namespace"):
            load_settings({"namespace": name})


def test_the_redis_password_goes_into_every_connection_url_and_nowhere_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROVISIONER_REDIS_PASSWORD", "p@ss:w/rd")
    settings = load_settings({"redis_url": "rediss://ops@redis:6380/2?ssl_cert_reqs=required"})
    assert settings.redis_connection_url() == (
        "rediss://ops:p%40ss%3Aw%2Frd@redis:6380/2?ssl_cert_reqs=required"
    )
    assert "p@ss" not in repr(settings) and "p@ss" not in str(settings)
    # Child processes inherit it; a person is shown it hidden.
    assert settings.to_env()["PROVISIONER_REDIS_PASSWORD"] == "p@ss:w/rd"
    assert "p@ss" not in str(settings.to_env(reveal_secrets=False))
    monkeypatch.delenv("PROVISIONER_REDIS_PASSWORD")
    assert load_settings().redis_connection_url() == load_settings().redis_url


def test_config_never_prints_the_redis_password() -> None:
    result = run_cli(
        "config",
        "--redis-url",
        "redis://:in-the-url@redis:6379/0",
        env={"PROVISIONER_REDIS_PASSWORD": "hunter2-hunter2"},
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "in-the-url" not in result.stdout
    assert "PROVISIONER_REDIS_PASSWORD=(set, hidden)" in result.stdout.splitlines()


def test_the_redis_password_has_no_flag_and_is_refused_empty_without_echo() -> None:
    assert "--redis-password" not in run_cli("worker", "--help").stdout
    result = run_cli("config", env={"PROVISIONER_REDIS_PASSWORD": ""})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "PROVISIONER_REDIS_PASSWORD" in line
