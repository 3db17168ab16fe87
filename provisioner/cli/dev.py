"""``provisioner dev``: the local control plane (kube-apiserver + etcd) and redis-server."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    dev = subparsers.add_parser(
        "dev",
        help="local control plane and redis-server, no cluster needed",
        description="Start, inspect and stop a local kube-apiserver + etcd + redis-server.",
    )
    actions = dev.add_subparsers(dest="dev_command", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("up", _up, "start the servers and install the RunnerScaleSet CRD"),
        ("down", _down, "stop the servers `dev up` started, and nothing else"),
        ("env", _env, "print the export lines for KUBECONFIG and REDIS_URL"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.add_argument(
            "--state-dir",
            type=Path,
            default=Path(".provisioner-dev"),
            help="where certificates, kubeconfig, data and logs live (default .provisioner-dev)",
        )
        action.set_defaults(func=func)


def _up(args: argparse.Namespace) -> int:
    from provisioner.cli import CommandError
    from provisioner.devenv.binaries import BinariesUnavailable
    from provisioner.devenv.procs import ProcessFailed
    from provisioner.devenv.redis_server import RedisUnavailable
    from provisioner.devenv.stack import DevStackError, dev_up

    try:
        state = dev_up(args.state_dir)
    except (BinariesUnavailable, ProcessFailed, RedisUnavailable, DevStackError) as exc:
        raise CommandError(str(exc)) from None
    print(f"kube-apiserver {state.apiserver_url}, redis {state.redis_url}")
    print(f"kubeconfig {state.kubeconfig}; to use it in this shell:")
    print(f'  eval "$(provisioner dev env --state-dir {args.state_dir})"')
    return 0


def _down(args: argparse.Namespace) -> int:
    from provisioner.devenv.stack import dev_down

    stopped = dev_down(args.state_dir)
    print("stopped " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def _env(args: argparse.Namespace) -> int:
    from provisioner.cli import CommandError
    from provisioner.devenv.stack import read_state

    state = read_state(args.state_dir.resolve())
    if state is None:
        raise CommandError(f"no local control plane in {args.state_dir}; run `provisioner dev up`")
    print("\n".join(state.env_lines()))
    return 0
