"""The GitHub simulator: GitHub's self-hosted runner REST API, with its limits and faults."""

from provisioner.ghsim.config import SimulatorConfig
from provisioner.ghsim.server import GitHubSimulator

__all__ = ["GitHubSimulator", "SimulatorConfig"]
