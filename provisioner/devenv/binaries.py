"""kube-apiserver and etcd binaries for the local control plane.

Found in ``KUBEBUILDER_ASSETS`` (as envtest users expect), else in the cache, else built
once from the Go module proxy into the cache. The build pins one Kubernetes release; its
staging modules (k8s.io/api, k8s.io/apiserver, ...) are replaced by their published
versions, which is what ``k8s.io/kubernetes`` needs to be usable as a dependency.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
# The etcd release that KUBERNETES_VERSION's go.mod requires.
ETCD_VERSION = "v3.7.0"
CACHE_ENV = "PROVISIONER_KUBE_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "runner-provisioner" / "kube"

_APISERVER_MAIN = """package main

import (
\t"os"

\t"k8s.io/component-base/cli"
\t"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
\tos.Exit(cli.Run(app.NewAPIServerCommand()))
}
"""

_ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
\tetcdmain.Main(os.Args)
}
"""


class BinariesUnavailable(RuntimeError):
    """The binaries are neither present nor buildable; the message says what to install."""


@dataclass(frozen=True)
class KubeBinaries:
    kube_apiserver: Path
    etcd: Path


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE) / KUBERNETES_VERSION


def _complete(directory: Path) -> KubeBinaries | None:
    apiserver, etcd = directory / "kube-apiserver", directory / "etcd"
    if all(p.is_file() and os.access(p, os.X_OK) for p in (apiserver, etcd)):
        return KubeBinaries(apiserver, etcd)
    return None


def find_kube_binaries() -> KubeBinaries | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found = _complete(Path(assets))
        if found is None:
            raise BinariesUnavailable(
                f"KUBEBUILDER_ASSETS={assets} has no executable kube-apiserver and etcd; "
                "point it at a directory holding both, or unset it to build them"
            )
        return found
    return _complete(cache_dir())


def ensure_kube_binaries(log: Callable[[str], object] = print) -> KubeBinaries:
    """Binaries ready to run; builds them on first use (a few minutes, once)."""
    found = find_kube_binaries()
    if found is not None:
        return found
    target = cache_dir()
    log(f"building kube-apiserver and etcd {KUBERNETES_VERSION} into {target} (once)")
    build_kube_binaries(target)
    built = _complete(target)
    if built is None:
        raise BinariesUnavailable(f"the build finished but {target} lacks the binaries")
    return built


def staging_replacements(kubernetes_go_mod: str, staging_version: str) -> list[str]:
    """``replace`` lines pointing each staging module at its published release."""
    modules = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", kubernetes_go_mod, re.M)
    return [f"\t{module} => {module} {staging_version}" for module in modules]


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BinariesUnavailable(
            "building kube-apiserver and etcd needs the Go toolchain (1.26 or newer) on PATH: "
            "install it from https://go.dev/dl/ or your package manager, or set "
            "KUBEBUILDER_ASSETS to a directory that holds kube-apiserver and etcd"
        )
    return go


def _run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BinariesUnavailable(
            f"`{' '.join(cmd)}` failed while building the kube binaries:\n{tail}\n"
            "check that the Go module proxy is reachable and Go is 1.26 or newer"
        )
    return result.stdout


def _version_ldflags() -> str:
    # Stamp the release into the binary, so clients see v1.37.2 and not v0.0.0-master.
    major, minor, _ = KUBERNETES_VERSION.removeprefix("v").split(".")
    package = "k8s.io/component-base/version"
    stamps = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    return " ".join(["-s", "-w", *(f"-X {package}.{k}={v}" for k, v in stamps.items())])


def build_kube_binaries(target: Path) -> None:
    go = _go()
    target.mkdir(parents=True, exist_ok=True)
    staging_version = "v0." + KUBERNETES_VERSION.removeprefix("v1.")
    with tempfile.TemporaryDirectory(prefix="kubebins-", dir=target.parent) as tmp:
        module = Path(tmp)
        download = json.loads(
            _run(
                [go, "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"], module
            )
        )
        kube_go_mod = Path(download["GoMod"]).read_text()
        go_directive = re.search(r"^go (\S+)", kube_go_mod, re.M)
        lines = [
            "module provisioner.dev/kubebins",
            "",
            f"go {go_directive.group(1) if go_directive else '1.26.0'}",
            "",
            "require (",
            f"\tk8s.io/kubernetes {KUBERNETES_VERSION}",
            f"\tgo.etcd.io/etcd/server/v3 {ETCD_VERSION}",
            ")",
            "",
            "replace (",
            *staging_replacements(kube_go_mod, staging_version),
            ")",
            "",
        ]
        (module / "go.mod").write_text("\n".join(lines))
        for name, source in (("kube-apiserver", _APISERVER_MAIN), ("etcd", _ETCD_MAIN)):
            (module / "cmd" / name).mkdir(parents=True)
            (module / "cmd" / name / "main.go").write_text(source)
        _run([go, "mod", "tidy"], module)
        out = module / "bin"
        _run(
            [
                go,
                "build",
                "-trimpath",
                "-ldflags",
                _version_ldflags(),
                "-o",
                f"{out}/",
                "./cmd/kube-apiserver",
                "./cmd/etcd",
            ],
            module,
        )
        for name in ("kube-apiserver", "etcd"):
            # Rename is atomic, so a concurrent reader never sees half a binary.
            os.replace(out / name, target / name)
