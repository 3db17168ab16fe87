"""``provisioner gc``: one garbage-collection pass, listing what it removes."""

from __future__ import annotations

import argparse

from provisioner.cli.flags import add_settings_flags, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gc",
        help="remove leaked registrations, secrets and stale ledger entries",
        description="Remove what a crash may have left: GitHub registrations of our runners "
        "with no pod and no creation in flight, runner Secrets with no pod, and ledger "
        "entries past their deadline. Leftovers younger than the grace period are kept.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be removed; remove nothing"
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=None,
        help="how long a leftover must have been orphaned (default 120; a one-off pass "
        "removes orphans at once unless this is given)",
    )
    add_settings_flags(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from provisioner.cli import CommandError
    from provisioner.cli.preflight import check_process_settings
    from provisioner.kube.scaleset import ScaleSetStore
    from provisioner.reconciler.gc import GarbageCollector
    from provisioner.runtime import Runtime

    settings = settings_from_args(args)
    check_process_settings(settings)
    if args.grace_seconds is not None and args.grace_seconds < 0:
        raise CommandError(f"--grace-seconds must be >= 0, got {args.grace_seconds}")
    runtime = Runtime(settings)
    try:
        # A single pass has no earlier sighting to measure the grace from: it uses the
        # in-flight ledger alone to spare creations under way, unless a grace is asked for.
        collector = GarbageCollector(runtime, grace=args.grace_seconds or 0.0)
        report = collector.collect(
            ScaleSetStore(runtime.api).list(settings.namespace), args.dry_run
        )
    finally:
        runtime.close()
    verb = "would remove" if args.dry_run else "removed"
    for kind, names in (
        ("registration", report.registrations),
        ("secret", report.secrets),
        ("ledger entry", report.ledger_entries),
    ):
        for name in names:
            print(f"{verb} {kind} {name}")
    print(f"{verb} {report.total} leftovers")
    for key in report.skipped:
        print(f"skipped scale set {key}: its GitHub credential or Secret failed (logged above)")
    return 1 if report.skipped else 0
