"""``provisioner demo``: the whole product on this machine, end to end, in one command."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.cli.argtypes import bounded_float, bounded_int
from provisioner.cli.flags import add_settings_flags, add_state_dir_flag, settings_from_args

if TYPE_CHECKING:
    from rich.console import Console

    from provisioner.config import Settings

NAMESPACE = "demo"
SCALE_SET = "demo"


RUNNERS = bounded_int(1, 5000)
MILLISECONDS = bounded_float(0, 60_000, "milliseconds")
SECONDS = bounded_float(0, 86_400, "seconds", low_exclusive=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="provision runners end to end on a local control plane",
        description="Start a local kube-apiserver + etcd, redis-server, the GitHub simulator, "
        "workers and the reconciler; scale a RunnerScaleSet to N runners with a progress bar; "
        "print the time and what exists; scale back to 0; tear everything down.",
    )
    parser.add_argument("--runners", type=RUNNERS, default=100, help="runners (default 100)")
    parser.add_argument(
        "--workers", type=bounded_int(1, 64), default=2, help="worker processes (default 2)"
    )
    parser.add_argument(
        "--github-latency-ms",
        type=MILLISECONDS,
        default=300.0,
        help="simulated GitHub latency per call in ms (default 300)",
    )
    parser.add_argument(
        "--timeout", type=SECONDS, default=600.0, help="seconds to wait for the fleet"
    )
    add_state_dir_flag(parser)
    add_settings_flags(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from provisioner.cli import CommandError, unwind_on_sigterm
    from provisioner.devenv.binaries import BinariesUnavailable
    from provisioner.devenv.procs import ProcessFailed
    from provisioner.devenv.redis_server import RedisUnavailable

    unwind_on_sigterm()
    settings = settings_from_args(args)
    console = Console()
    try:
        if args.state_dir is not None:
            return _demo(args, settings, args.state_dir.resolve(), console)
        with tempfile.TemporaryDirectory(prefix="provisioner-demo-") as tmp:
            return _demo(args, settings, Path(tmp), console)
    except (BinariesUnavailable, ProcessFailed, RedisUnavailable) as exc:
        raise CommandError(str(exc)) from None


def _demo(args: argparse.Namespace, settings: Settings, state_dir: Path, console: Console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from provisioner.devenv.pipeline import LocalPipeline

    pipeline = LocalPipeline(
        state_dir,
        settings,
        workers=args.workers,
        ghsim_args=["--latency-ms", str(args.github_latency_ms)],
        log=lambda message: console.print(f"[dim]{message}[/dim]"),
    )
    try:
        # Inside the try: servers started before a failed start are stopped too.
        with console.status(
            "starting kube-apiserver, etcd, redis-server, GitHub simulator, "
            f"reconciler and {args.workers} workers"
        ):
            pipeline.start()
        console.print(
            f"control plane, Redis, simulator ({args.github_latency_ms:.0f} ms per GitHub call), "
            f"reconciler and {args.workers} workers are up; logs in {state_dir / 'logs'}"
        )
        pipeline.apply_scale_set(NAMESPACE, SCALE_SET, replicas=0, max_runners=args.runners)
        started = time.monotonic()
        pipeline.scale(NAMESPACE, SCALE_SET, args.runners)
        count = pipeline.count(NAMESPACE, SCALE_SET)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"scaling {SCALE_SET} to {args.runners}", total=args.runners)
            while time.monotonic() - started < args.timeout:
                count = pipeline.count(NAMESPACE, SCALE_SET)
                progress.update(task, completed=count.complete_runners)
                if count.complete_runners >= args.runners:
                    break
                time.sleep(0.2)
        elapsed = time.monotonic() - started
        status = pipeline.status(NAMESPACE, SCALE_SET)

        table = Table(title=f"RunnerScaleSet {NAMESPACE}/{SCALE_SET}")
        for column in (
            "desired",
            "created",
            "registrations",
            "secrets",
            "pods",
            "failed",
            "elapsed",
        ):
            table.add_column(column, justify="right")
        table.add_row(
            str(args.runners),
            str(count.complete_runners),
            str(count.registrations),
            str(count.secrets),
            str(count.pods),
            str(status.get("failedCreations", 0)),
            f"{elapsed:.1f}s",
        )
        console.print(table)
        reached = count.complete_runners >= args.runners
        if reached:
            console.print(
                f"[bold green]{args.runners} runners in {elapsed:.1f}s[/bold green] "
                f"({args.runners / elapsed:.1f} runners/s)"
            )
        else:
            console.print(
                f"[bold red]only {count.complete_runners}/{args.runners} runners "
                f"after {elapsed:.0f}s[/bold red]; see the logs in {state_dir / 'logs'}"
            )

        with console.status("scaling back to 0"):
            pipeline.scale(NAMESPACE, SCALE_SET, 0)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                left = pipeline.count(NAMESPACE, SCALE_SET)
                if (left.pods, left.secrets, left.registrations) == (0, 0, 0):
                    break
                time.sleep(0.5)
        console.print(
            f"after scaling to 0: {left.registrations} registrations, {left.secrets} secrets, "
            f"{left.pods} pods left"
        )
        return 0 if reached and (left.pods, left.secrets, left.registrations) == (0, 0, 0) else 1
    finally:
        with console.status("stopping everything"):
            pipeline.stop()
