"""The GitHub simulator: GitHub's self-hosted runner REST API, with its limits and faults."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.ghsim.config import SimulatorConfig
    from provisioner.ghsim.server import GitHubSimulator

__all__ = ["GitHubSimulator", "SimulatorConfig"]


def __getattr__(name: str) -> Any:
    # Lazy, so `provisioner --help` does not load the server to describe its flags.
    if name == "GitHubSimulator":
        from provisioner.ghsim.server import GitHubSimulator

        return GitHubSimulator
    if name == "SimulatorConfig":
        from provisioner.ghsim.config import SimulatorConfig

        return SimulatorConfig
    raise AttributeError(name)
