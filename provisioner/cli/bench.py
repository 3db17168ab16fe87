"""``provisioner bench``: time to N runners, side by side across creation modes, on one local
pipeline started once for the whole benchmark."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

from provisioner.bench import cases
from provisioner.bench.burst import jobs_burst
from provisioner.bench.tenants import CredentialPool, plan_tenant_cases, tenant_count
from provisioner.cli.argtypes import bounded_float
from provisioner.cli.flags import add_settings_flags, add_state_dir_flag, settings_from_args
from provisioner.ghsim.config import DEFAULT_PAT as SIM_TOKEN
from provisioner.ghsim.config import PROFILE_NAMES

if TYPE_CHECKING:
    from rich.progress import Progress

    from provisioner.bench.burst import JobBurstResult
    from provisioner.bench.session import BenchSession
    from provisioner.bench.tenant_report import TenantComparison
    from provisioner.bench.tenant_session import TenantBench
    from provisioner.bench.tenants import TenantCase
    from provisioner.config import Settings


SECONDS = bounded_float(1, 86_400, "seconds")


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """A bad flag is refused with one line naming it (exit 2), not the whole usage text."""

    def error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message}\n")

    parser.error = error  # type: ignore[method-assign]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure time to N runners: sequential, parallel and the machine's limit",
        description="Start a local kube-apiserver + etcd, redis-server, the GitHub simulator, "
        "the reconciler and workers once; for each mode, concurrency and N scale a fresh "
        "RunnerScaleSet from 0 to N, measure, and scale it back to 0. Prints a table and the "
        "ratios sequential/parallel and parallel/limit; writes JSON and a PNG plot.",
    )
    _one_line_errors(parser)
    parser.add_argument(
        "--runners",
        type=cases.runner_counts,
        default=[10, 50, 100, 500],
        help="comma-separated runner counts N (default 10,50,100,500)",
    )
    parser.add_argument(
        "--modes",
        type=cases.modes,
        default=None,
        help="comma-separated modes: sequential (ARC-like, one at a time in the reconciler), "
        "parallel (reconciler + Celery workers), fixed (parallel with "
        "--no-adaptive-concurrency), limit (the same creations from a thread pool in this "
        "process, no queue and no rate limits) (default: sequential,parallel,limit)",
    )
    parser.add_argument(
        "--github-latency-ms",
        type=cases.latency_ms,
        default=300.0,
        help="simulated GitHub latency per call in ms (default 300; 0 measures queue overhead)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes for parallel (default 2)"
    )
    parser.add_argument(
        "--concurrency",
        type=cases.concurrencies,
        default=None,
        help="comma-separated creation concurrencies for parallel and limit "
        "(default: --runner-creation-concurrency, 10)",
    )
    parser.add_argument(
        "--secondary-limit-per-minute",
        type=cases.per_minute,
        default=0,
        help="turn on the simulator's secondary limit on generate-jitconfig at this many calls "
        "per minute, to compare throughput with it and with --github-requests-per-second",
    )
    parser.add_argument(
        "--github-rate-limit",
        type=cases.per_hour,
        default=None,
        help="the simulator's primary rate limit, calls an hour per credential (default: the "
        "simulator's, 5,000 as GitHub gives a token); each runner costs at least two (create "
        "and remove), so a scale-up of N runners needs more than 2N",
    )
    parser.add_argument(
        "--secondary-max-concurrent",
        type=cases.concurrent_requests,
        default=0,
        help="turn on the simulator's secondary limit on concurrent requests per credential "
        "at this many: above it GitHub answers 429 with retry-after 1 s (compare the fixed and "
        "parallel modes with a --concurrency above it)",
    )
    parser.add_argument(
        "--jobs-burst",
        type=jobs_burst,
        default=None,
        metavar="N",
        help="instead of the runner counts, enqueue N jobs in the simulator at once and let "
        "`provisioner webhook` scale a RunnerScaleSet (minRunners 0, maxRunners N) to them; "
        "measures the time to N runners ready and to all jobs done, and leaks once the fleet "
        "is back at 0",
    )
    parser.add_argument(
        "--tenants",
        type=tenant_count,
        default=None,
        metavar="K",
        help="instead of the modes, split each N over K RunnerScaleSets, each in its own "
        "organisation with its own token, and scale them at once (parallel mode); one tenant "
        "alone with the same share runs first. Reports time to N, each tenant's time to its "
        "share and the ratios to one tenant alone, 429/403 answers and primary budget left per "
        "token, and with GitHub's limits set the least time they allow",
    )
    parser.add_argument(
        "--github-profile",
        choices=PROFILE_NAMES,
        default="default",
        help="the simulator's preset of limits: github.com sets GitHub.com's published ones "
        "(5,000 requests/h per token, 900 points a minute per endpoint, 100 concurrent "
        "requests, 1,500 registrations per 5 minutes per scope) (default: default, no limits)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG plot here")
    parser.add_argument(
        "--timeout", type=SECONDS, default=900.0, help="seconds one run may take (default 900)"
    )
    parser.add_argument(
        "--grace",
        type=SECONDS,
        default=90.0,
        help="after scaling to 0, what is left counts as leaked once nothing has been removed "
        "for this many seconds (default 90: removals past GitHub's per-minute limit of "
        "delete-runner wait up to a minute)",
    )
    add_state_dir_flag(parser)
    add_settings_flags(parser)
    parser.set_defaults(func=_run)


def _check(args: argparse.Namespace) -> None:
    if not 1 <= args.workers <= 64:
        args_error(f"argument --workers: must be between 1 and 64, got {args.workers}")
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None and not path.resolve().parent.is_dir():
            args_error(f"argument {flag}: directory {path.resolve().parent} does not exist")
    if args.tenants is not None:
        for flag, given in (
            ("--modes", args.modes),
            ("--jobs-burst", args.jobs_burst),
            ("--plot", args.plot),
        ):
            if given is not None:
                args_error(f"argument {flag}: not with --tenants (tenants run in parallel mode)")
        if min(args.runners) < args.tenants:
            args_error(
                f"argument --runners: each N must be at least --tenants ({args.tenants}), "
                f"got {min(args.runners)}"
            )
    elif not args.jobs_burst:
        # Every run shares one credential: the provisioner would create only what its
        # primary budget allows and keep the rest for removals, and the run would time out.
        modes = args.modes or cases.DEFAULT_MODES
        calls = CALLS_PER_RUNNER * sum(args.runners) * len(modes) * len(args.concurrency or [1])
        limit = args.github_rate_limit or SIMULATOR_RATE_LIMIT
        if calls > limit:
            args_error(
                f"argument --runners: these runs need about {calls} GitHub calls of one "
                f"credential (create and remove each runner), more than the simulator's "
                f"primary limit of {limit} an hour; raise --github-rate-limit"
            )


# A runner's creation and removal; the simulator's default primary limit, GitHub's for a token.
CALLS_PER_RUNNER = 2
SIMULATOR_RATE_LIMIT = 5000


def args_error(message: str) -> None:
    print(f"provisioner bench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def machine_description() -> str:
    import psutil

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    memory = psutil.virtual_memory().total / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            models = [line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {memory:.1f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; load average {load} "
        "at start"
    )


def _run(args: argparse.Namespace) -> int:
    from provisioner.cli import CommandError, unwind_on_sigterm
    from provisioner.devenv.binaries import BinariesUnavailable
    from provisioner.devenv.procs import ProcessFailed
    from provisioner.devenv.redis_server import RedisUnavailable

    _check(args)
    unwind_on_sigterm()
    settings = settings_from_args(args)
    try:
        if args.state_dir is not None:
            return _bench(args, settings, args.state_dir.resolve())
        with tempfile.TemporaryDirectory(prefix="provisioner-bench-") as tmp:
            return _bench(args, settings, Path(tmp))
    except (BinariesUnavailable, ProcessFailed, RedisUnavailable) as exc:
        raise CommandError(str(exc)) from None


def _bench(args: argparse.Namespace, settings: Settings, state_dir: Path) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from provisioner.bench.report import BenchReport
    from provisioner.bench.session import BenchFailed, BenchSession
    from provisioner.cli import CommandError
    from provisioner.devenv.pipeline import LocalPipeline
    from provisioner.ghsim.admin import SimulatorAdmin

    console = Console()
    if not console.is_terminal:
        # Piped or redirected (CI, docs): wide enough that the table's columns keep their names.
        console = Console(width=160)
    concurrency = args.concurrency or [settings.runner_creation_concurrency]
    modes = args.modes or cases.DEFAULT_MODES
    plan = (
        []
        if args.jobs_burst or args.tenants
        else cases.plan_cases(modes, args.runners, concurrency)
    )
    tenant_plan = plan_tenant_cases(args.runners, args.tenants, concurrency) if args.tenants else []
    # The warm-ups' token first, then one fresh token per tenant and run.
    credentials = CredentialPool(
        sum(case.credentials_needed for case in tenant_plan), first_place=2
    )
    ghsim_args = ["--latency-ms", str(args.github_latency_ms)]
    if args.github_profile != "default":
        ghsim_args += ["--profile", args.github_profile]
    if args.github_rate_limit:
        ghsim_args += ["--rate-limit", str(args.github_rate_limit)]
    if tenant_plan:
        for token in [SIM_TOKEN, *credentials.tokens]:
            ghsim_args += ["--pat", token]
    report = BenchReport(
        command="provisioner " + shlex.join(sys.argv[1:]),
        machine=machine_description(),
    )
    pipeline = LocalPipeline(
        state_dir,
        settings,
        workers=args.workers,
        ghsim_args=ghsim_args,
        log=lambda message: console.print(f"[dim]{message}[/dim]"),
    )
    try:
        # Inside the try: a server that fails to start must not leave the others running.
        with console.status("starting kube-apiserver, etcd, redis-server and the GitHub simulator"):
            pipeline.start()
        if args.secondary_limit_per_minute:
            with SimulatorAdmin(pipeline.ghsim_url) as admin:
                admin.configure(secondary_jitconfig_per_minute=args.secondary_limit_per_minute)
        if args.secondary_max_concurrent:
            with SimulatorAdmin(pipeline.ghsim_url) as admin:
                admin.configure(secondary_max_concurrent=args.secondary_max_concurrent)
        console.print(
            f"pipeline up ({args.github_latency_ms:g} ms per GitHub call); "
            f"logs in {state_dir / 'logs'}; "
            + (
                f"a burst of {args.jobs_burst} jobs"
                if args.jobs_burst
                else f"{len(tenant_plan)} tenant cases"
                if tenant_plan
                else f"{len(plan)} runs"
            )
        )
        session = BenchSession(
            pipeline,
            namespace=f"bench-{uuid.uuid4().hex[:6]}",
            base_settings=settings,
            workers=args.workers,
            github_latency_ms=args.github_latency_ms,
            timeout=args.timeout,
            grace=args.grace,
            secondary_limit_per_minute=args.secondary_limit_per_minute,
        )
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            "[dim]{task.fields[note]}",
            console=console,
        ) as progress:
            for case in plan:
                label = (
                    case.mode if case.mode == "sequential" else f"{case.mode} c={case.concurrency}"
                )
                task = progress.add_task(f"{label} N={case.runners}", total=case.runners, note="")
                # mypy cannot type a lambda that binds the loop variable as a default.
                session.status = cast(
                    Callable[[str], None],
                    lambda message, task=task: progress.update(task, note=message),
                )
                try:
                    run = session.run(
                        case,
                        cast(
                            Callable[[int], None],
                            lambda done, task=task: progress.update(task, completed=done),
                        ),
                    )
                except BenchFailed as exc:
                    raise CommandError(str(exc)) from None
                report.runs.append(run)
                progress.update(
                    task,
                    note=f"{run.seconds:.2f}s, {run.runners_per_second:.1f}/s"
                    + (f", {run.leaks.total} leaked" if run.leaks.total else ""),
                )
            if args.jobs_burst:
                report.job_burst = _job_burst(args, session, progress, concurrency[0])
            if tenant_plan:
                tenants = _tenant_bench(args, session, credentials)
                for tenant_case in tenant_plan:
                    report.tenant_runs.append(_tenant_case(tenants, tenant_case, progress))
    finally:
        with console.status("stopping everything"):
            pipeline.stop()
    report.machine += (
        "; load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + (" at end")
    )
    report.print_table(console)
    if args.json is not None:
        report.write_json(args.json)
        console.print(f"wrote {args.json}")
    if args.plot is not None:
        report.write_plot(args.plot)
        console.print(f"wrote {args.plot}")
    if report.job_burst is not None and not report.job_burst.complete:
        console.print(
            f"[bold red]job burst: not every job done or "
            f"{report.job_burst.leaks.total} left at 0[/bold red]; see {state_dir / 'logs'}"
        )
        return 1
    incomplete = [run for run in report.runs if run.created < run.runners or run.leaks.total]
    for run in incomplete:
        console.print(
            f"[bold red]{run.label} N={run.runners}: {run.created} runners created, "
            f"{run.leaks.total} left after scaling to 0[/bold red]; see {state_dir / 'logs'}"
        )
    tenants_incomplete = [run for run in report.tenant_runs if not run.complete]
    for comparison in tenants_incomplete:
        for group in (comparison.alone, comparison.together):
            if not group.complete:
                console.print(
                    f"[bold red]{len(group.tenants)} tenant(s), N={group.runners}: "
                    f"{group.created} runners created, {group.leaks} left after scaling to "
                    f"0[/bold red]; see {state_dir / 'logs'}"
                )
    return 1 if incomplete or tenants_incomplete else 0


def _tenant_bench(
    args: argparse.Namespace, session: BenchSession, credentials: CredentialPool
) -> TenantBench:
    """The tenant runner, with the simulator's limits when any are set (then each tenant's
    least possible time under them is reported)."""
    from provisioner.bench.tenant_session import TenantBench
    from provisioner.bench.tenants import GitHubLimits
    from provisioner.ghsim.admin import SimulatorAdmin

    with SimulatorAdmin(session.pipeline.ghsim_url) as admin:
        knobs = admin.config()
    limited = (
        args.github_profile != "default"
        or args.secondary_limit_per_minute
        or args.secondary_max_concurrent
    )
    return TenantBench(
        session,
        credentials,
        github_profile=args.github_profile,
        limits=GitHubLimits.from_simulator_config(knobs) if limited else None,
        budget_resource=(
            "actions_runner_registration"
            if knobs.get("registration_resource") == "actions_runner_registration"
            else "core"
        ),
    )


def _tenant_case(tenants: TenantBench, case: TenantCase, progress: Progress) -> TenantComparison:
    from provisioner.bench.session import BenchFailed
    from provisioner.cli import CommandError

    total = case.runners + (case.alone_share if case.runs_alone else 0)
    task = progress.add_task(
        f"{case.tenants} tenants N={case.runners} c={case.concurrency}", total=total, note=""
    )
    tenants.session.status = lambda message: progress.update(task, note=message)
    try:
        comparison = tenants.run(case, lambda done: progress.update(task, completed=done))
    except BenchFailed as exc:
        raise CommandError(str(exc)) from None
    ratio = comparison.ratio_to_alone
    progress.update(
        task,
        completed=total,
        note=f"{comparison.together.seconds or 0:.2f}s"
        + ("" if ratio is None else f", {ratio:.2f}x alone"),
    )
    return comparison


def _job_burst(
    args: argparse.Namespace, session: BenchSession, progress: Progress, concurrency: int
) -> JobBurstResult:
    """The burst case on the pipeline's reconciler and workers in parallel mode."""
    from provisioner.bench.burst import run_job_burst

    task = progress.add_task(f"job burst N={args.jobs_burst}", total=None, note="")
    session.status = lambda message: progress.update(task, note=message)
    session.use(session.setup_for("parallel", concurrency))
    result = run_job_burst(
        session.pipeline,
        session.namespace,
        args.jobs_burst,
        args.github_latency_ms,
        timeout=args.timeout,
        grace=args.grace,
        status=session.status,
    )
    progress.update(task, total=1, completed=1, note=f"{result.jobs_completed_s or 0:.2f}s")
    return result
