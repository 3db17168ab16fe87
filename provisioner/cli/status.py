"""``provisioner status [NAME]``: a table of each RunnerScaleSet's runners and conditions."""

from __future__ import annotations

import argparse
import contextlib
import datetime
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from provisioner.cli.flags import settings_from_args
from provisioner.config import Settings, env_name, flag_name

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.client.exceptions import ApiException
    from rich.table import Table

    from provisioner.runtime.credentials import CredentialView

KUBE_SETTINGS = ("kubeconfig", "namespace")


def add_kube_flags(parser: argparse.ArgumentParser, namespace_help: str) -> None:
    """Only the settings these commands use: --kubeconfig and --namespace."""
    helps = {
        "kubeconfig": Settings.model_fields["kubeconfig"].description,
        "namespace": namespace_help,
    }
    for field in KUBE_SETTINGS:
        parser.add_argument(
            flag_name(field),
            dest=f"setting_{field}",
            metavar=field.upper(),
            default=argparse.SUPPRESS,
            help=f"{helps[field]} [env {env_name(field)}]",
        )


@contextlib.contextmanager
def kube_connection(args: argparse.Namespace) -> Iterator[tuple[ApiClient, Settings]]:
    """An API client for the --kubeconfig setting; unreachable APIs become one-line errors."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from provisioner.cli import CommandError
    from provisioner.cli.preflight import check_kube_config
    from provisioner.kube.client import api_client

    settings = settings_from_args(args)
    check_kube_config(settings)
    api = api_client(settings.kubeconfig)
    try:
        with api:
            yield api, settings
    except HTTPError as exc:
        raise CommandError(f"cannot reach the Kubernetes API server: {exc}") from None
    except ApiException as exc:
        raise CommandError(
            f"the Kubernetes API server answered {exc.status} {exc.reason}: {_api_message(exc)}"
        ) from None


def _api_message(exc: ApiException) -> str:
    import json

    try:
        message: str = json.loads(exc.body)["message"]
        return message
    except (TypeError, ValueError, KeyError):
        return "no details"


def live_runner_pods(api: ApiClient, namespace: str, scale_set_name: str) -> list:
    """The scale set's runner pods that have not finished and are not being deleted."""
    from provisioner.kube.runner_objects import RunnerObjects, runner_pod_state

    return [
        pod
        for pod in RunnerObjects(api, namespace).list_runner_pods(scale_set_name)
        if runner_pod_state(pod) != "finished" and not pod.metadata.deletion_timestamp
    ]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show RunnerScaleSets: desired, runners, ready, pending, in flight, failed",
        description="Show each RunnerScaleSet (of --namespace, else of all namespaces): its "
        "desired runners (spec.replicas within minRunners..maxRunners), the runner pods that "
        "exist, how many are ready or pending, creations in flight, failed creations, its "
        "conditions and its age.",
    )
    parser.add_argument("name", nargs="?", help="show only the scale set with this name")
    add_kube_flags(parser, "show only the scale sets of this namespace (default: all)")
    parser.add_argument(
        flag_name("redis_url"),
        dest="setting_redis_url",
        metavar="REDIS_URL",
        default=argparse.SUPPRESS,
        help="where the GitHub credentials' limits are kept, for the credentials table "
        f"[env {env_name('redis_url')}]",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from provisioner.cli import CommandError

    console = Console()
    with kube_connection(args) as (api, settings):
        objects = _scale_set_objects(api, settings.namespace)
        if args.name:
            objects = [o for o in objects if o["metadata"]["name"] == args.name]
            if not objects:
                where = f"namespace {settings.namespace}" if settings.namespace else "any namespace"
                raise CommandError(f"no RunnerScaleSet named {args.name} in {where}")
        if not objects:
            console.print("no RunnerScaleSets found")
            return 0
        rows = [status_row(obj, live_runner_pods(api, *_where(obj))) for obj in objects]
    console.print(status_table(rows))
    for row in rows:
        for problem in row.problems:
            console.print(f"{row.namespace}/{row.name}: {problem}", highlight=False)
    try:
        credentials = credential_rows(settings)
    except Exception as exc:  # the credentials table is extra; the scale sets are shown
        console.print(f"GitHub credentials: not shown, Redis did not answer ({exc})")
        return 0
    if credentials:
        console.print(credentials_table(credentials))
        # GitHub's words are too long for a column: one line each, below the table.
        for credential in credentials:
            if credential.rejected:
                console.print(f"{credential.identity}: {credential.rejected}", highlight=False)
    return 0


class CredentialRow:
    """One GitHub credential by its non-secret identity, as the limits in Redis see it."""

    def __init__(self, view: CredentialView, paused_for: float, in_use: int, limit: int) -> None:
        self.identity = view.identity
        self.budget = f"{view.remaining}/{view.limit}" if view.limit is not None else "-"
        self.reset = _clock(view.reset) if view.reset else "-"
        self.paused = f"{paused_for:.0f}s" if paused_for > 0 else "-"
        self.throttled = str(view.throttled)
        self.concurrency = f"{in_use}/{limit}"
        self.rejected = view.rejected


def credential_rows(settings: Settings) -> list[CredentialRow]:
    import redis

    from provisioner.runtime.credentials import CredentialRecords
    from provisioner.runtime.limits import CredentialLimits

    client = redis.Redis.from_url(settings.redis_connection_url(), socket_timeout=5)
    try:
        records = CredentialRecords(client)
        rows = []
        for view in records.all():
            limits = CredentialLimits(settings, client, view.identity, records)
            rows.append(
                CredentialRow(
                    view,
                    limits.paused_for(),
                    limits.budget.in_use(),
                    limits.budget.current_limit(),
                )
            )
        return rows
    finally:
        client.close()


def credentials_table(rows: list[CredentialRow]) -> Table:
    from rich.table import Table

    table = Table(title="GitHub credentials")
    cells = [
        (
            row.identity,
            row.budget,
            row.reset,
            row.paused,
            row.throttled,
            row.concurrency,
            "yes" if row.rejected else "-",
        )
        for row in rows
    ]
    # Values are never cut, however narrow the terminal (a pipe is 80 columns): the identity
    # is what a user matches against logs and metrics. Headers give way first.
    for index, column in enumerate(
        ("CREDENTIAL", "BUDGET", "RESETS", "PAUSED", "THROTTLED", "CONCURRENCY", "REJECTED")
    ):
        table.add_column(
            column,
            justify="left" if index == 0 else "right",
            no_wrap=True,
            min_width=max((len(row[index]) for row in cells), default=0),
        )
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


def _clock(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M:%SZ")


def _where(obj: dict) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _scale_set_objects(api: ApiClient, namespace: str | None) -> list[dict]:
    from kubernetes import client as k8s

    from provisioner.kube.crd import GROUP, PLURAL, VERSION

    custom = k8s.CustomObjectsApi(api)
    if namespace:
        answer = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    else:
        answer = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    return sorted(answer.get("items", []), key=_where)


class StatusRow:
    """One scale set's line: read from the raw object, so an invalid spec still shows."""

    def __init__(self, obj: dict, pods: list, now: datetime.datetime) -> None:
        from provisioner.kube.runner_objects import runner_pod_state
        from provisioner.planner import clamp_desired

        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        self.namespace, self.name = meta["namespace"], meta["name"]
        min_runners = int(spec.get("minRunners") or 0)
        max_runners = spec.get("maxRunners")
        try:
            self.desired = str(
                clamp_desired(int(spec.get("replicas") or 0), min_runners, max_runners)
            )
        except ValueError:
            self.desired = "?"
        states = [runner_pod_state(pod) for pod in pods]
        self.runners = len(pods)
        self.ready = states.count("running")
        self.pending = states.count("pending")
        self.in_flight = int(status.get("inFlight") or 0)
        self.failed = int(status.get("failedCreations") or 0)
        conditions = status.get("conditions") or []
        self.conditions = summarize_conditions(conditions)
        self.problems = [
            f"{c['type']}: {c.get('message') or c.get('reason')}"
            for c in conditions
            if c.get("type") == "Degraded" and c.get("status") == "True"
        ]
        failing_to_start = states.count("failed_to_start")
        if failing_to_start:
            self.problems.append(f"{failing_to_start} runner pods failing to start")
        self.age = _age(meta.get("creationTimestamp"), now)


def status_row(obj: dict, pods: list, now: datetime.datetime | None = None) -> StatusRow:
    return StatusRow(obj, pods, now or datetime.datetime.now(datetime.UTC))


def summarize_conditions(conditions: list[dict]) -> str:
    """ "Ready" or "NotReady(reason)", then the other conditions that hold, with reasons."""
    parts: list[str] = []
    for condition in conditions:
        kind, reason = condition.get("type"), condition.get("reason")
        holds = condition.get("status") == "True"
        if kind == "Ready":
            parts.insert(0, "Ready" if holds else f"NotReady({reason})")
        elif holds:
            # The CRD schema requires every condition to have a type.
            parts.append(f"{kind}({reason})" if reason else cast(str, kind))
    return ", ".join(parts) or "-"


def _age(created: str | None, now: datetime.datetime) -> str:
    if not created:
        return "-"
    then = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def status_table(rows: list[StatusRow]) -> Table:
    from rich.table import Table

    table = Table(title="RunnerScaleSets")
    for column in ("NAMESPACE", "NAME"):
        table.add_column(column)
    for column in ("DESIRED", "RUNNERS", "READY", "PENDING", "IN-FLIGHT", "FAILED"):
        table.add_column(column, justify="right")
    table.add_column("CONDITIONS")
    table.add_column("AGE", justify="right")
    for row in rows:
        table.add_row(
            row.namespace,
            row.name,
            row.desired,
            str(row.runners),
            str(row.ready),
            str(row.pending),
            str(row.in_flight),
            str(row.failed),
            row.conditions,
            row.age,
        )
    return table
