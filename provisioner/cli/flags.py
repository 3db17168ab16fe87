"""CLI flags generated from Settings, so a setting cannot exist without its flag."""

from __future__ import annotations

import argparse
from pathlib import Path

from provisioner.config import ENVIRONMENT_ONLY, Settings, env_name, flag_name, load_settings


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "settings", "each flag also reads its PROVISIONER_* environment variable"
    )
    for field, info in Settings.model_fields.items():
        if field in ENVIRONMENT_ONLY:
            continue
        help_text = f"{info.description} [env {env_name(field)}; default {info.default}]"
        if info.annotation is bool:
            group.add_argument(
                flag_name(field),
                dest=f"setting_{field}",
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            # Values stay strings here: pydantic converts and validates them with one message
            # format for flags and environment variables alike.
            group.add_argument(
                flag_name(field),
                dest=f"setting_{field}",
                metavar=field.upper(),
                default=argparse.SUPPRESS,
                help=help_text,
            )


def add_state_dir_flag(parser: argparse.ArgumentParser) -> None:
    """Where a command that starts the whole pipeline keeps its logs and data."""
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="keep logs and data here (default: a temporary directory, removed at the end)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_")
    }
    return load_settings(overrides)
