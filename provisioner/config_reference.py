"""docs/configuration.md, generated from Settings so the reference cannot drift from the code.

Regenerate with ``provisioner config --reference > docs/configuration.md``.
"""

from __future__ import annotations

from pydantic.fields import FieldInfo

from provisioner.config import ENVIRONMENT_ONLY, Settings, accepted_values, env_name, flag_name

REGENERATE_COMMAND = "provisioner config --reference > docs/configuration.md"

_HEADER = f"""# Configuration reference

<!-- Generated from provisioner/config.py by `{REGENERATE_COMMAND}`; do not edit by hand. -->

Every process (reconciler, worker, ghsim, flower, and the CLI commands) reads the same
settings. Each one is a command-line flag and a `PROVISIONER_*` environment variable; a flag
wins over the variable, and the variable over the default. Boolean flags come in pairs
(`--x` / `--no-x`); their variables take `true` or `false`. Secrets (the Redis password) are
environment variables only, so they never show in the process list, and `provisioner config`
prints them hidden. A value a setting does not accept (a kubeconfig that cannot be read, a
Redis URL that does not parse, a namespace name that is not a DNS-1123 label, a number out of
bounds) stops the process at start with one line naming the flag and the variable, exit
status 2. `provisioner config [FLAGS]` prints what a process would run with.

In Kubernetes, set them as environment variables on the Deployments (see
`k8s/base/config.yaml`); in Docker Compose, in `compose.yaml`'s `x-provisioner-env` block.

| Flag | Environment variable | Default | Accepts | Description |
|---|---|---|---|---|
"""


def _flag(field: str, info: FieldInfo) -> str:
    if field in ENVIRONMENT_ONLY:
        return "(none: environment only)"
    flag = flag_name(field)
    if info.annotation is bool:
        return f"`{flag}` / `--no-{flag.removeprefix('--')}`"
    return f"`{flag} {field.upper()}`"


def _default(info: FieldInfo) -> str:
    if info.default is None:
        return "unset"
    if isinstance(info.default, bool):
        return "`true`" if info.default else "`false`"
    return f"`{info.default}`"


def _accepts(field: str, info: FieldInfo) -> str:
    words = accepted_values(field)
    if words == "a valid value":
        words = "text"
    if info.default is None:
        words += ", or unset"
    return words


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def configuration_reference() -> str:
    """The whole of docs/configuration.md."""
    rows = []
    for field, info in Settings.model_fields.items():
        cells = [
            _flag(field, info),
            f"`{env_name(field)}`",
            _default(info),
            _accepts(field, info),
            info.description or "",
        ]
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return _HEADER + "\n".join(rows) + "\n"
