"""``provisioner config``: the settings a process would run with, after flags and environment."""

from __future__ import annotations

import argparse

from provisioner.cli.flags import add_settings_flags, settings_from_args
from provisioner.config import Settings, env_name


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config",
        help="validate and print the effective settings",
        description="Resolve every setting from flags and PROVISIONER_* variables, refuse a "
        "bad value with a message naming it, and print the result.",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="print the configuration reference (docs/configuration.md) generated from the "
        "settings, instead of the effective values",
    )
    add_settings_flags(parser)
    parser.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> int:
    if args.reference:
        from provisioner.config_reference import configuration_reference

        print(configuration_reference(), end="")
        return 0
    env = settings_from_args(args).to_env(reveal_secrets=False)
    for field in Settings.model_fields:
        print(f"{env_name(field)}={env.get(env_name(field), '')}")
    return 0
