"""`provisioner flower` refuses what would expose Flower's API (which can stop workers and
revoke tasks): a placeholder, empty or short basic-auth password anywhere, and no
authentication on an address other than loopback. Each is one line and exit status 2."""

from __future__ import annotations

import pytest

from provisioner.cli.flower import check_flower_access
from provisioner.config import SettingsError
from tests.unit.test_config import run_cli

STRONG = "ops:8c1f0e5b2a9d4e77a1c3"


@pytest.mark.parametrize(
    "basic_auth",
    [
        "admin:change-me",
        "ops:please-change-me-2024",
        "admin:admin",
        "",
        "ops:",
        "ops:short-pw",
        ":" + "x" * 20,
        "ops",
    ],
    ids=[
        "shipped placeholder",
        "long placeholder",
        "admin:admin",
        "empty",
        "no password",
        "short",
        "no user",
        "no colon",
    ],
)
def test_a_weak_basic_auth_is_refused_with_one_line_naming_it(basic_auth: str) -> None:
    result = run_cli("flower", env={"FLOWER_BASIC_AUTH": basic_auth})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "FLOWER_BASIC_AUTH" in line
    assert "change-me" not in line and "short-pw" not in line  # never echoed


def test_the_flag_form_is_checked_too() -> None:
    result = run_cli("flower", "--", "--basic-auth=admin:replace-with-a-password")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "--basic-auth" in line and "placeholder" in line


def test_no_authentication_off_loopback_is_refused() -> None:
    result = run_cli("flower", "--address", "0.0.0.0")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "--address 0.0.0.0" in line and "FLOWER_BASIC_AUTH" in line


@pytest.mark.parametrize(
    ("address", "extra", "environ"),
    [
        ("127.0.0.1", [], {}),
        ("::1", [], {}),
        ("localhost", [], {}),
        ("0.0.0.0", [], {"FLOWER_BASIC_AUTH": STRONG}),
        ("0.0.0.0", [f"--basic-auth={STRONG}"], {}),
        ("0.0.0.0", ["--basic_auth", STRONG], {}),
        ("10.1.2.3", ["--auth=.*@example\\.com"], {}),
    ],
)
def test_what_is_allowed(address: str, extra: list[str], environ: dict[str, str]) -> None:
    check_flower_access(address, extra, environ)


def test_an_address_among_flowers_own_options_is_refused() -> None:
    with pytest.raises(SettingsError, match="provisioner flower --address"):
        check_flower_access("127.0.0.1", ["--address=0.0.0.0"], {})


def test_the_default_address_is_loopback() -> None:
    assert "default 127.0.0.1" in run_cli("flower", "--help").stdout
