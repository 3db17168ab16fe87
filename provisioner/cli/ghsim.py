"""``provisioner ghsim``: the GitHub simulator as a server, every knob a flag."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provisioner.ghsim.config import SimulatorConfig, knob_flag

# Knobs whose flag reads a file or differs from the field name.
FILE_KNOBS = {"app_public_key_pem": "--app-public-key"}
REPEATABLE_KNOBS = {
    "pats": "--pat",
    "app_installation_ids": "--app-installation-id",
    "runner_group_ids": "--runner-group-id",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ghsim",
        help="the GitHub simulator: runner endpoints, auth, rate limits, latency and faults",
        description="Serve GitHub's self-hosted runner REST API (repo, org and enterprise scope) "
        "with PAT and GitHub App auth, primary and secondary rate limits, latency and fault "
        "injection, at the root (api.github.com's form) and under /api/v3 (GitHub Enterprise "
        "Server's). Every knob can also be changed at run time with POST /_sim/config "
        "(JSON keys are the flag names with underscores).",
        epilog="admin endpoints (no credential, never rate limited): GET /_sim/registrations, "
        'POST /_sim/runners/{id or name}/state {"state": online|busy|idle|offline|finished}, '
        "GET /_sim/counters, GET and POST /_sim/config, POST /_sim/reset, "
        'GET, POST and DELETE /_sim/credentials (one credential\'s rules: {"token": ...} or '
        '{"installation_id": N} with revoked, latency_ms, throttle, rate_limit). '
        "The default PAT is ghsim-token unless --pat is given.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free)")
    knobs = parser.add_argument_group("knobs")
    for field, info in SimulatorConfig.model_fields.items():
        default = info.default
        if field in FILE_KNOBS:
            knobs.add_argument(
                FILE_KNOBS[field],
                dest=f"knob_{field}",
                type=Path,
                metavar="FILE",
                default=argparse.SUPPRESS,
                help=f"{info.description} (a PEM file)",
            )
        elif field in REPEATABLE_KNOBS:
            knobs.add_argument(
                REPEATABLE_KNOBS[field],
                dest=f"knob_{field}",
                action="append",
                metavar=field.upper().removesuffix("S"),
                default=argparse.SUPPRESS,
                help=f"{info.description} [default {', '.join(map(str, default))}]",
            )
        elif info.annotation is bool:
            knobs.add_argument(
                knob_flag(field),
                dest=f"knob_{field}",
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f"{info.description} [default {default}]",
            )
        else:
            knobs.add_argument(
                knob_flag(field),
                dest=f"knob_{field}",
                metavar=field.upper(),
                default=argparse.SUPPRESS,
                help=f"{info.description} [default {default}]",
            )
    parser.set_defaults(func=_serve)


def _flag(field: str) -> str:
    return FILE_KNOBS.get(field) or REPEATABLE_KNOBS.get(field) or knob_flag(field)


def _serve(args: argparse.Namespace) -> int:
    from provisioner.cli import CommandError
    from provisioner.ghsim.config import KnobError, build_config
    from provisioner.ghsim.server import GitHubSimulator

    values: dict[str, object] = {
        key.removeprefix("knob_"): value
        for key, value in vars(args).items()
        if key.startswith("knob_")
    }
    for field, flag in FILE_KNOBS.items():
        if field in values:
            path = Path(str(values[field]))
            try:
                values[field] = path.read_text()
            except OSError as exc:
                raise CommandError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    try:
        config = build_config(values)
    except KnobError as exc:
        print(f"provisioner ghsim: error: {_flag(exc.knob)}: {exc.problem}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print("provisioner ghsim: error: --port: use 0 to 65535", file=sys.stderr)
        return 2
    simulator = GitHubSimulator(config, host=args.host, port=args.port)
    try:
        simulator.serve_forever(on_ready=lambda url: print(f"ghsim listening on {url}", flush=True))
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0
