"""What a worker process sets up once and shares between its task threads, against a real
kube-apiserver and redis-server."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client as k8s

from provisioner.config import Settings
from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.scaleset import ScaleSet
from workers.context import WorkerContext

pytestmark = pytest.mark.integration


def test_a_batch_arriving_together_reads_its_scale_set_once(
    kube_api, kubeconfig, namespace, redis_url
):
    custom = k8s.CustomObjectsApi(kube_api)
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, scale_set_manifest("runners", 0, 10)
    )
    scale_set = ScaleSet.from_object(created)
    context = WorkerContext(Settings(kubeconfig=kubeconfig, redis_url=redis_url))
    reads: list[str] = []
    read = context.store.get

    def counted_read(namespace: str, name: str) -> ScaleSet:
        reads.append(name)
        return read(namespace, name)

    context.store.get = counted_read
    start = threading.Barrier(10)

    def first_task_of_batch(_: int) -> ScaleSet:
        start.wait()
        return context.scale_set(scale_set.key, scale_set.generation)

    try:
        with ThreadPoolExecutor(10) as pool:
            seen = list(pool.map(first_task_of_batch, range(10)))
        assert reads == ["runners"]
        assert {s.uid for s in seen} == {scale_set.uid}

        # A new generation (the spec changed) is read again, once.
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "runners", {"spec": {"maxRunners": 20}}
        )
        with ThreadPoolExecutor(10) as pool:
            seen = list(
                pool.map(
                    lambda _: context.scale_set(scale_set.key, scale_set.generation + 1), range(10)
                )
            )
        assert reads == ["runners", "runners"]
        assert {s.max_runners for s in seen} == {20}
    finally:
        context.close()
