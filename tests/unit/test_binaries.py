"""Finding and building the kube binaries, without building anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.devenv import binaries
from provisioner.devenv.binaries import (
    BinariesUnavailable,
    ensure_kube_binaries,
    find_kube_binaries,
    staging_replacements,
)


def fake_binaries(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("kube-apiserver", "etcd"):
        path = directory / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)


def test_kubebuilder_assets_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_binaries(tmp_path / "assets")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path / "assets"))
    found = find_kube_binaries()
    assert found is not None
    assert found.kube_apiserver == tmp_path / "assets" / "kube-apiserver"


def test_kubebuilder_assets_without_binaries_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(BinariesUnavailable, match="KUBEBUILDER_ASSETS"):
        find_kube_binaries()


def test_cached_binaries_are_used_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv(binaries.CACHE_ENV, str(tmp_path))
    fake_binaries(tmp_path / binaries.KUBERNETES_VERSION)
    monkeypatch.setenv("PATH", "")  # a build would need go: prove none is attempted
    assert ensure_kube_binaries(log=lambda _: None).etcd.parent == tmp_path / "v1.37.2"


def test_missing_go_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv(binaries.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BinariesUnavailable) as error:
        ensure_kube_binaries(log=lambda _: None)
    assert "Go toolchain" in str(error.value)
    assert "KUBEBUILDER_ASSETS" in str(error.value)


def test_staging_modules_are_replaced_by_their_releases() -> None:
    go_mod = (
        "module k8s.io/kubernetes\n\nreplace (\n"
        "\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n"
        "\tgithub.com/other/thing => github.com/other/thing v1.0.0\n)\n"
    )
    assert staging_replacements(go_mod, "v0.37.2") == [
        "\tk8s.io/api => k8s.io/api v0.37.2",
        "\tk8s.io/client-go => k8s.io/client-go v0.37.2",
    ]
