"""``provisioner flower``: Flower, the Celery monitor, on our app and broker.

Flower's API can shut workers down and revoke tasks, so it listens on the loopback address
unless told otherwise, refuses a non-loopback address without authentication, and refuses a
basic-auth password that is empty, short or a placeholder."""

from __future__ import annotations

import argparse
import ipaddress
import os

from provisioner.cli.flags import add_settings_flags, settings_from_args
from provisioner.config import SettingsError

BASIC_AUTH_ENV = "FLOWER_BASIC_AUTH"
OAUTH_ENV = "FLOWER_AUTH"
MIN_PASSWORD_LENGTH = 12
# Words of shipped examples and defaults: a password containing one was never chosen.
PLACEHOLDER_WORDS = ("change-me", "changeme", "replace", "placeholder", "example", "admin")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "flower",
        help="Flower web UI for the task queue",
        description="Run Flower against the same Redis as the workers. Basic auth comes from "
        f"{BASIC_AUTH_ENV}=user:password (or --basic-auth after `--`); without it Flower "
        "serves on a loopback address only. Extra Flower options go after `--`.",
    )
    parser.add_argument("--port", type=int, default=5555, help="HTTP port (default 5555)")
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); any other than a loopback address "
        "needs authentication",
    )
    parser.add_argument("flower_args", nargs=argparse.REMAINDER, help="options passed to Flower")
    add_settings_flags(parser)
    parser.set_defaults(func=_run)


def _option(args: list[str], name: str) -> str | None:
    """The value of Flower option ``--name`` in ``args`` (``--name=v`` or ``--name v``)."""
    value = None
    for index, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and index + 1 < len(args):
            value = args[index + 1]
    return value


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_basic_auth(value: str, source: str) -> None:
    """Each ``user:password`` of a basic-auth value must have a user and a password that is
    long enough and not a placeholder; SettingsError names ``source`` otherwise."""
    pairs = value.split(",")
    for pair in pairs:
        user, colon, password = pair.partition(":")
        if not colon or not user.strip():
            raise SettingsError(f"{source}: expected user:password, got no user or no ':'")
        lowered = password.lower()
        if len(password) < MIN_PASSWORD_LENGTH:
            raise SettingsError(
                f"{source}: the password of {user!r} is shorter than {MIN_PASSWORD_LENGTH} "
                "characters; choose a long random one (e.g. `openssl rand -hex 16`)"
            )
        if lowered == user.lower() or any(word in lowered for word in PLACEHOLDER_WORDS):
            raise SettingsError(
                f"{source}: the password of {user!r} is a placeholder; choose a random one "
                "(e.g. `openssl rand -hex 16`)"
            )


def check_flower_access(address: str, extra: list[str], environ: dict[str, str]) -> None:
    """Refuse a weak basic auth anywhere, and no authentication on a reachable address."""
    if _option(extra, "address") is not None:
        raise SettingsError("give the address as `provisioner flower --address`, before `--`")
    basic_auth = _option(extra, "basic_auth") or _option(extra, "basic-auth")
    source = "--basic-auth"
    if basic_auth is None and BASIC_AUTH_ENV in environ:
        basic_auth, source = environ[BASIC_AUTH_ENV], BASIC_AUTH_ENV
    if basic_auth is not None:
        check_basic_auth(basic_auth, source)
        return
    if _option(extra, "auth") or environ.get(OAUTH_ENV):
        return  # Flower's OAuth login
    if not _is_loopback(address):
        raise SettingsError(
            f"--address {address}: Flower can stop workers and revoke tasks, so it needs "
            f"authentication off the loopback address: set {BASIC_AUTH_ENV}=user:password"
        )


def _run(args: argparse.Namespace) -> int:
    from provisioner.cli.preflight import check_redis_credentials
    from provisioner.config import export_to_environ

    settings = settings_from_args(args)
    extra = [a for a in args.flower_args if a != "--"]
    check_flower_access(args.address, extra, dict(os.environ))
    check_redis_credentials(settings)
    export_to_environ(settings)

    from provisioner.runtime.queue import make_celery

    # Flower needs the broker, not the tasks: it learns them from the workers' events.
    app = make_celery(settings)
    app.start(["flower", f"--address={args.address}", f"--port={args.port}", *extra])
    return 0
