"""Settings: defaults, environment, flags, and the one-line refusal of a bad value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from provisioner.cli.flags import add_settings_flags
from provisioner.config import Settings, SettingsError, load_settings


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
        assert "--" + field.replace("_", "-") in flags


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
