"""`provisioner scale` and `provisioner status` against a real kube-apiserver. Runner pods are
created by the test, standing in for the reconciler and workers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kubernetes import client as k8s

from provisioner.cli import main
from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.runner_objects import RunnerObjects
from provisioner.kube.scaleset import ScaleSet, ScaleSetStore, with_condition

pytestmark = pytest.mark.integration


def create_scale_set(kube_api, namespace: str, name: str = "runners", replicas: int = 0):
    obj = k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, scale_set_manifest(name, replicas, 10)
    )
    return ScaleSet.from_object(obj)


def cli_args(*args: str, kubeconfig: str, namespace: str | None = None) -> list[str]:
    argv = [*args, "--kubeconfig", kubeconfig]
    if namespace:
        argv += ["--namespace", namespace]
    return argv


def cli_process(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "provisioner", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_scale_sets_replicas_and_wait_ends_when_the_pods_exist(
    kube_api, kubeconfig, namespace, kubelet
):
    scale_set = create_scale_set(kube_api, namespace)
    objects = RunnerObjects(kube_api, namespace)
    objects.create_pod(scale_set, "runners-fffff")
    kubelet.finish("runners-fffff")  # a finished runner does not count
    wait = ["--replicas", "3", "--wait", "--timeout", "60"]
    waiting = cli_process(
        cli_args("scale", "runners", *wait, kubeconfig=kubeconfig, namespace=namespace)
    )
    kubelet.auto_run()
    for name in ("runners-aaaaa", "runners-bbbbb", "runners-ccccc"):
        objects.create_pod(scale_set, name)

    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert f"{namespace}/runners scaled to 3 runners" in out
    assert "3/3" in out
    assert ScaleSetStore(kube_api).get(namespace, "runners").replicas == 3


def test_scale_wait_times_out_with_a_clear_message(kube_api, kubeconfig, namespace):
    create_scale_set(kube_api, namespace)
    wait = ["--replicas", "2", "--wait", "--timeout", "1"]
    waiting = cli_process(
        cli_args("scale", "runners", *wait, kubeconfig=kubeconfig, namespace=namespace)
    )
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 1
    assert err.strip().splitlines()[-1] == (
        f"provisioner scale: timed out after 1s: 0 of 2 runner pods of {namespace}/runners "
        "exist; `provisioner status runners` shows why"
    )


def test_scale_refuses_unknown_scale_sets_and_replicas_above_max(
    kube_api, kubeconfig, namespace, capsys
):
    create_scale_set(kube_api, namespace)
    argv = cli_args("scale", "nope", "--replicas", "1", kubeconfig=kubeconfig, namespace=namespace)
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        f"provisioner scale: no RunnerScaleSet {namespace}/nope; `provisioner status` lists them"
    )

    argv = cli_args(
        "scale", "runners", "--replicas", "11", kubeconfig=kubeconfig, namespace=namespace
    )
    assert main(argv) == 1
    assert "above spec.maxRunners (10)" in capsys.readouterr().err
    assert ScaleSetStore(kube_api).get(namespace, "runners").replicas == 0


def table_rows(out: str) -> dict[str, list[str]]:
    """The table's rows by scale set name, cells stripped."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if len(cells) == 10:
            rows[cells[1]] = cells
    return rows


def test_status_shows_desired_runners_states_and_conditions(
    kube_api, kubeconfig, namespace, kubelet, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")
    scale_set = create_scale_set(kube_api, namespace, replicas=25)  # maxRunners is 10
    create_scale_set(kube_api, namespace, "idle")
    objects = RunnerObjects(kube_api, namespace)
    for name in ("runners-aaaaa", "runners-bbbbb", "runners-ccccc", "runners-ddddd"):
        objects.create_pod(scale_set, name)
    kubelet.run("runners-aaaaa")
    kubelet.run("runners-bbbbb")
    kubelet.finish("runners-ccccc")
    store = ScaleSetStore(kube_api)
    now = "2026-01-01T00:00:00Z"
    conditions = with_condition([], "Ready", "False", "Converging", "3/10 runners", now)
    conditions = with_condition(conditions, "Throttled", "True", "GitHubRateLimited", "-", now)
    conditions = with_condition(conditions, "Degraded", "True", "CreationsFailed", "2 failed", now)
    store.patch_status(
        namespace, "runners", {"inFlight": 4, "failedCreations": 2, "conditions": conditions}
    )

    assert main(cli_args("status", kubeconfig=kubeconfig, namespace=namespace)) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert rows["runners"][2:9] == [
        "10",
        "3",
        "2",
        "1",
        "4",
        "2",
        "NotReady(Converging), Throttled(GitHubRateLimited), Degraded(CreationsFailed)",
    ]
    assert rows["idle"][2:9] == ["0", "0", "0", "0", "0", "0", "-"]
    assert f"{namespace}/runners: Degraded: 2 failed" in out

    assert main(cli_args("status", "idle", kubeconfig=kubeconfig, namespace=namespace)) == 0
    assert set(table_rows(capsys.readouterr().out)) == {"idle"}
    assert main(cli_args("status", "nope", kubeconfig=kubeconfig, namespace=namespace)) == 1
    assert capsys.readouterr().err.strip() == (
        f"provisioner status: no RunnerScaleSet named nope in namespace {namespace}"
    )


def test_scale_refuses_negative_replicas_before_calling_the_api(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["scale", "runners", "--replicas", "-2", "--kubeconfig", "/nonexistent"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "argument --replicas: must be between 0 and 2147483647, got -2" in error
