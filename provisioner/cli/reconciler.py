"""``provisioner reconciler``: watch RunnerScaleSets and keep each at its desired size."""

from __future__ import annotations

import argparse
import signal
import threading

from provisioner.cli.flags import add_settings_flags, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconciler",
        help="watch RunnerScaleSets and plan runners (leader-elected)",
        description="Watch RunnerScaleSets and their runner pods; plan missing runners and "
        "enqueue them for the workers (or, with --no-parallel-creation, create them here one "
        "after another). Run two replicas: one leads, the other stands by.",
    )
    parser.add_argument(
        "--lease-namespace",
        default="default",
        help="namespace of the leader-election Lease (default: default)",
    )
    add_settings_flags(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from provisioner.cli import configure_logging
    from provisioner.cli.preflight import check_process_settings
    from provisioner.config import export_to_environ

    settings = settings_from_args(args)
    check_process_settings(settings)
    export_to_environ(settings)
    configure_logging(settings.log_level)

    from kubernetes.client import VersionApi

    from provisioner.health import Heartbeat, OpsServer
    from provisioner.reconciler.loop import Reconciler

    reconciler = Reconciler(settings, lease_namespace=args.lease_namespace)
    heartbeat = Heartbeat("reconcile loop", max_silence=max(60.0, settings.runner_creation_timeout))
    reconciler.on_heartbeat = heartbeat.beat
    ops = OpsServer(
        settings.metrics_port,
        heartbeats=[heartbeat],
        readiness={
            "redis": reconciler.runtime.redis.ping,
            "kube-apiserver": lambda: VersionApi(reconciler.runtime.api).get_code(),
        },
    ).start()

    def shut_down(*_: object) -> None:
        reconciler.stop()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    worker = threading.Thread(target=reconciler.run, name="reconciler")
    worker.start()
    while worker.is_alive():
        worker.join(timeout=0.5)
    ops.stop()
    return 0
