"""The ``provisioner`` command: one subcommand per role or user task."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from provisioner.config import SettingsError

# Each module has register(subparsers); handlers import their heavy dependencies lazily so
# `provisioner --help` and a bad flag answer at once.
COMMAND_MODULES = [
    "dev",
    "config",
    "ghsim",
    "worker",
    "reconciler",
    "flower",
    "demo",
    "bench",
    "gc",
    "webhook",
    "scale",
    "status",
]


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provisioner",
        description="Ephemeral GitHub Actions runners on Kubernetes, created in parallel.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"provisioner.cli.{name}").register(subparsers)
    return parser


def unwind_on_sigterm() -> None:
    """For commands that start servers (demo, bench): SIGTERM (`kill`, `timeout`, a cancelled
    CI job) unwinds the command like Ctrl-C does, so its ``finally`` stops what it started.
    Exit status 143, as for a process killed by SIGTERM."""

    def exit_143(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_143)


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"provisioner: error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"provisioner {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
