"""``provisioner webhook``: scale RunnerScaleSets with the job queue (webhooks + polling)."""

from __future__ import annotations

import argparse
import signal
import threading

from provisioner.cli.flags import add_settings_flags, settings_from_args

SETTINGS_PREFIX = "webhook_setting_"


def register(subparsers: argparse._SubParsersAction) -> None:
    from provisioner.autoscale.settings import ENV_PREFIX, WebhookSettings, flag_of

    parser = subparsers.add_parser(
        "webhook",
        help="autoscale RunnerScaleSets from GitHub workflow_job webhooks and polling",
        description="Receive GitHub workflow_job webhooks (signed with the webhook secret), "
        "match each job to a RunnerScaleSet by its labels and set spec.replicas to minRunners "
        "plus the jobs queued or running, within maxRunners. A polling backstop lists each "
        "repository's queued and in-progress jobs and corrects what lost webhooks missed.",
    )
    group = parser.add_argument_group("autoscaler", f"each also reads {ENV_PREFIX}<NAME>")
    for field, info in WebhookSettings.model_fields.items():
        if field == "secret":
            continue
        help_text = f"{info.description} [default {info.default}]"
        if info.annotation is bool:
            group.add_argument(
                flag_of(field),
                dest=SETTINGS_PREFIX + field,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            group.add_argument(
                flag_of(field),
                dest=SETTINGS_PREFIX + field,
                metavar=field.upper(),
                default=argparse.SUPPRESS,
                help=help_text,
            )
    add_settings_flags(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from provisioner.autoscale.settings import load_webhook_settings
    from provisioner.cli import CommandError, configure_logging
    from provisioner.cli.preflight import check_process_settings

    # The webhook's own settings first: a bad secret is named even where nothing else is set.
    webhook = load_webhook_settings(
        {
            key.removeprefix(SETTINGS_PREFIX): value
            for key, value in vars(args).items()
            if key.startswith(SETTINGS_PREFIX)
        }
    )
    secret = webhook.secret_bytes() if webhook.receive else b""
    settings = settings_from_args(args)
    check_process_settings(settings)
    configure_logging(settings.log_level)

    import redis

    from provisioner.autoscale.jobs_api import JobsClient
    from provisioner.autoscale.receiver import WebhookReceiver
    from provisioner.autoscale.runner import AutoscalerLoops
    from provisioner.autoscale.service import Autoscaler
    from provisioner.autoscale.store import DemandStore
    from provisioner.autoscale.targets import ScaleTargets
    from provisioner.health import OpsServer
    from provisioner.kube.client import api_client

    if not webhook.receive and webhook.poll_interval == 0:
        raise CommandError("--no-receive with --poll-interval 0 would never see a job")
    connection = redis.Redis.from_url(settings.redis_connection_url())
    api = api_client(settings.kubeconfig)
    jobs = JobsClient(settings.github_api_url, timeout=settings.github_request_timeout)
    autoscaler = Autoscaler(
        DemandStore(connection, delivery_ttl_s=webhook.delivery_ttl, job_ttl_s=webhook.job_ttl),
        ScaleTargets(api, settings.namespace),
        scale_down_delay_s=webhook.scale_down_delay,
        jobs_client=jobs,
    )
    loops = AutoscalerLoops(autoscaler, webhook.sync_interval, webhook.poll_interval)
    ops = OpsServer(settings.metrics_port).start()
    receiver = None
    try:
        if webhook.receive:
            try:
                receiver = WebhookReceiver(
                    secret,
                    autoscaler.handle,
                    max_body_bytes=webhook.max_body_bytes,
                    host=webhook.host,
                    port=webhook.port,
                ).start()
            except OSError as exc:
                raise CommandError(
                    f"--port {webhook.port}: cannot listen on {webhook.host}: {exc.strerror}"
                ) from None
            print(f"webhook receiver listening on {receiver.url}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        loops.start()
        stop.wait()
    finally:
        loops.stop()
        if receiver is not None:
            receiver.stop()
        ops.stop()
        jobs.close()
        api.close()
        connection.close()
    return 0
