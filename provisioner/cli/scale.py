"""``provisioner scale NAME --replicas N [--wait]``: set a RunnerScaleSet's desired runners
through its scale subresource, as `kubectl scale` does, and optionally wait for them."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from provisioner.cli.argtypes import bounded_float, bounded_int
from provisioner.cli.status import add_kube_flags, kube_connection, live_runner_pods

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from rich.console import Console

DEFAULT_NAMESPACE = "default"
POLL_SECONDS = 0.5


REPLICAS = bounded_int(0, 2_147_483_647)
SECONDS = bounded_float(0, 86_400, "seconds", low_exclusive=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scale",
        help="set a RunnerScaleSet's desired runners (spec.replicas)",
        description="Set spec.replicas of a RunnerScaleSet through its scale subresource. "
        "With --wait, show a progress bar of its runner pods until exactly that many exist.",
    )
    parser.add_argument("name", help="the RunnerScaleSet")
    parser.add_argument(
        "--replicas", type=REPLICAS, required=True, help="desired runners (0 or more)"
    )
    parser.add_argument(
        "--wait", action="store_true", help="wait until that many runner pods exist"
    )
    parser.add_argument(
        "--timeout",
        type=SECONDS,
        default=600.0,
        help="seconds --wait waits before giving up with exit status 1 (default 600)",
    )
    add_kube_flags(parser, f"namespace of the RunnerScaleSet (default: {DEFAULT_NAMESPACE})")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException
    from rich.console import Console

    from provisioner.cli import CommandError
    from provisioner.kube.crd import GROUP, PLURAL, VERSION
    from provisioner.kube.scaleset import ScaleSetStore

    console = Console()
    with kube_connection(args) as (api, settings):
        namespace = settings.namespace or DEFAULT_NAMESPACE
        where = f"{namespace}/{args.name}"
        try:
            obj = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, args.name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise CommandError(
                    f"no RunnerScaleSet {where}; `provisioner status` lists them"
                ) from None
            raise
        max_runners = (obj.get("spec") or {}).get("maxRunners")
        if max_runners is not None and args.replicas > max_runners:
            raise CommandError(
                f"--replicas {args.replicas} is above spec.maxRunners ({max_runners}) of "
                f"{where}; ask for at most {max_runners} or raise maxRunners"
            )
        ScaleSetStore(api).scale(namespace, args.name, args.replicas)
        console.print(f"{where} scaled to {args.replicas} runners", highlight=False)
        if args.wait:
            return _wait(console, api, namespace, args.name, args.replicas, args.timeout)
    return 0


def _wait(
    console: Console, api: ApiClient, namespace: str, name: str, replicas: int, timeout: float
) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from provisioner.cli import CommandError

    deadline = time.monotonic() + timeout
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("runner pods", total=replicas)
        while True:
            count = len(live_runner_pods(api, namespace, name))
            progress.update(task, completed=count)
            if count == replicas:
                return 0
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
    raise CommandError(
        f"timed out after {timeout:g}s: {count} of {replicas} runner pods of "
        f"{namespace}/{name} exist; `provisioner status {name}` shows why"
    )
