"""docs/configuration.md is the generated reference, so it cannot drift from Settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from provisioner.config import ENVIRONMENT_ONLY, Settings, env_name, flag_name
from provisioner.config_reference import REGENERATE_COMMAND, configuration_reference

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_committed_reference_matches_the_settings() -> None:
    assert COMMITTED.read_text() == configuration_reference(), (
        f"docs/configuration.md is out of date with provisioner/config.py; regenerate it with "
        f"`{REGENERATE_COMMAND}`"
    )


def test_every_setting_has_a_row_with_its_flag_variable_default_and_description() -> None:
    rows = [line for line in configuration_reference().splitlines() if "| `PROVISIONER_" in line]
    assert len(rows) == len(Settings.model_fields)
    for row, (field, info) in zip(rows, Settings.model_fields.items(), strict=True):
        if field in ENVIRONMENT_ONLY:
            assert row.startswith("| (none: environment only) |")
        else:
            assert row.startswith(f"| `{flag_name(field)}")
        assert f"`{env_name(field)}`" in row
        assert info.description and info.description in row
    by_flag = {row.split("`")[1].split()[0]: row for row in rows if row.startswith("| `--")}
    assert "`10`" in by_flag["--runner-creation-concurrency"]
    assert "`--no-parallel-creation`" in by_flag["--parallel-creation"]
    assert "one of DEBUG, INFO" in by_flag["--log-level"]
    assert ">= 0 and <= 65535" in by_flag["--metrics-port"]
    assert "unset" in by_flag["--namespace"]


def test_the_cli_prints_the_reference() -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "provisioner", "config", "--reference"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert answer.stdout == configuration_reference()
