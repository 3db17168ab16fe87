"""Settings of ``provisioner webhook`` alone (``PROVISIONER_WEBHOOK_*``); the shared ones
(Redis, kubeconfig, namespace, GitHub API URL, metrics port) come from ``Settings``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from provisioner.config import SettingsError

ENV_PREFIX = "PROVISIONER_WEBHOOK_"
# Flags that differ from the field name: the secret file keeps the webhook prefix so it reads
# as what it is next to the shared flags.
FLAGS = {"secret_file": "--webhook-secret-file"}
# Anyone who can reach the receiver can forge jobs with a guessable secret, so the values that
# example manifests and docs carry, and short ones, are refused rather than served.
MIN_SECRET_LENGTH = 16
PLACEHOLDER_MARKERS = ("replace-with", "change-me", "changeme", "placeholder", "your-secret")


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", validate_default=True, frozen=True
    )

    # No flag: a secret on the command line shows in the process list.
    secret: SecretStr | None = Field(
        None, description="The webhook secret configured on GitHub (environment only)."
    )
    secret_file: Path | None = Field(
        None, description="File holding the webhook secret (instead of the environment)."
    )
    host: str = Field("0.0.0.0", description="Address the webhook receiver listens on.")
    port: int = Field(8090, ge=0, le=65535, description="Port of the receiver (0: any free).")
    receive: bool = Field(
        True, description="Serve the webhook receiver; off leaves polling alone to find jobs."
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=25 * 1024 * 1024,
        description="Largest webhook body accepted; larger ones get 413 unread.",
    )
    delivery_ttl: int = Field(
        3 * 86_400,
        ge=60,
        le=30 * 86_400,
        description="Seconds a delivery id is remembered, so a redelivery counts once.",
    )
    job_ttl: int = Field(
        86_400,
        ge=60,
        le=30 * 86_400,
        description="Seconds a queued or running job counts without news of it (an event or "
        "a poll listing it); then its completion is taken as lost.",
    )
    scale_down_delay: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="Seconds demand must stay below spec.replicas before replicas go down.",
    )
    sync_interval: float = Field(
        1.0, gt=0, le=300, description="Seconds between passes that write spec.replicas."
    )
    poll_interval: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="Seconds between polls of GitHub's queued and in-progress jobs (0: off).",
    )

    def secret_bytes(self) -> bytes:
        """The secret from the file or the environment; SettingsError says how to give one."""
        if self.secret_file is not None:
            try:
                text = self.secret_file.read_text().strip()
            except OSError as exc:
                raise SettingsError(
                    f"--webhook-secret-file: cannot read {self.secret_file}: {exc.strerror}"
                ) from None
            if not text:
                raise SettingsError(f"--webhook-secret-file: {self.secret_file} is empty")
            return _usable_secret(text, f"--webhook-secret-file ({self.secret_file})")
        if self.secret is not None and self.secret.get_secret_value().strip():
            return _usable_secret(self.secret.get_secret_value().strip(), f"{ENV_PREFIX}SECRET")
        raise SettingsError(
            "no webhook secret: set PROVISIONER_WEBHOOK_SECRET or --webhook-secret-file to the "
            "secret configured on GitHub's webhook"
        )


def _usable_secret(secret: str, setting: str) -> bytes:
    """``secret`` as bytes, unless anyone could guess it; the message never repeats it."""
    lowered = secret.lower()
    if any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        raise SettingsError(
            f"{setting} is a placeholder, not a secret: generate one (e.g. openssl rand -hex 32) "
            "and set the same on GitHub's webhook"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise SettingsError(
            f"{setting} is shorter than {MIN_SECRET_LENGTH} characters: generate one "
            "(e.g. openssl rand -hex 32) and set the same on GitHub's webhook"
        )
    return secret.encode()


def flag_of(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def load_webhook_settings(overrides: dict[str, Any]) -> WebhookSettings:
    try:
        return WebhookSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "settings"
        raise SettingsError(
            f"invalid value {first.get('input')!r} for {flag_of(field)} "
            f"({ENV_PREFIX}{field.upper()}): {first['msg']}"
        ) from None
