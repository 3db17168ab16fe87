"""The bench's per-mode settings keep apart what the user set from the defaults: the local
pipeline paces generate-jitconfig as the simulator limits it only where the user set no pace
(a bench at 1,000 runners once ran at GitHub.com's 180 a minute against an unlimited
simulator)."""

from __future__ import annotations

from typing import cast

from provisioner.bench.session import BenchSession
from provisioner.config import Settings
from provisioner.devenv.pipeline import (
    UNLIMITED_SCOPE_REGISTRATIONS,
    LocalPipeline,
    scope_registrations_within,
)


def session(base: Settings) -> BenchSession:
    return BenchSession(
        pipeline=cast(LocalPipeline, None),
        namespace="bench",
        base_settings=base,
        workers=2,
        github_latency_ms=300,
        timeout=60,
        grace=10,
    )


def test_a_mode_leaves_the_generate_jitconfig_pace_to_the_simulator() -> None:
    settings = session(Settings()).settings_for("parallel", 50)

    assert settings.runner_creation_concurrency == 50
    assert settings.parallel_creation
    assert "github_registrations_per_minute" not in settings.model_fields_set


def test_a_pace_the_user_set_is_kept_in_every_mode() -> None:
    base = Settings(github_registrations_per_minute=60)

    for mode in ("sequential", "parallel", "fixed"):
        settings = session(base).settings_for(mode, 10)
        assert settings.github_registrations_per_minute == 60
        assert "github_registrations_per_minute" in settings.model_fields_set


def test_the_scope_cap_used_against_the_simulator_never_passes_its_own() -> None:
    assert scope_registrations_within(0, 300) == UNLIMITED_SCOPE_REGISTRATIONS
    assert scope_registrations_within(1500, 300) == 1500
    # 100 a minute: 100 in any 5 minutes keeps to it (500 could all come in one minute).
    assert scope_registrations_within(100, 60) == 100
    assert scope_registrations_within(1200, 1200) == 300
