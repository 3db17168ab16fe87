"""``provisioner flower``: Flower, the Celery monitor, on our app and broker."""

from __future__ import annotations

import argparse

from provisioner.cli.flags import add_settings_flags, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "flower",
        help="Flower web UI for the task queue",
        description="Run Flower against the same Redis as the workers. Extra Flower options "
        "(e.g. --basic-auth=user:pass) go after `--`.",
    )
    parser.add_argument("--port", type=int, default=5555, help="HTTP port (default 5555)")
    parser.add_argument("flower_args", nargs=argparse.REMAINDER, help="options passed to Flower")
    add_settings_flags(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from provisioner.config import export_to_environ

    settings = settings_from_args(args)
    export_to_environ(settings)

    from workers.app import app

    extra = [a for a in args.flower_args if a != "--"]
    app.start(["flower", f"--port={args.port}", *extra])
    return 0
