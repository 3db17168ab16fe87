"""What a process sets up once and shares between its task threads (the runtime), against a
real kube-apiserver and redis-server."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client as k8s

from provisioner.config import Settings
from provisioner.devenv.pipeline import scale_set_manifest
from provisioner.kube.crd import GROUP, PLURAL, VERSION
from provisioner.kube.scaleset import ScaleSet
from provisioner.runtime import Runtime
from provisioner.runtime.scale_sets import ScaleSetGone

pytestmark = pytest.mark.integration


def test_a_batch_arriving_together_reads_its_scale_set_once(
    kube_api, kubeconfig, namespace, redis_url
):
    custom = k8s.CustomObjectsApi(kube_api)
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, scale_set_manifest("runners", 0, 10)
    )
    scale_set = ScaleSet.from_object(created)
    runtime = Runtime(Settings(kubeconfig=kubeconfig, redis_url=redis_url))
    reads: list[str] = []
    read = runtime.store.get

    def counted_read(namespace: str, name: str) -> ScaleSet:
        reads.append(name)
        return read(namespace, name)

    runtime.store.get = counted_read
    start = threading.Barrier(10)

    def first_task_of_batch(_: int) -> ScaleSet:
        start.wait()
        return runtime.scale_sets.get(scale_set.key, scale_set.generation)

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
                    lambda _: runtime.scale_sets.get(scale_set.key, scale_set.generation + 1),
                    range(10),
                )
            )
        assert reads == ["runners", "runners"]
        assert {s.max_runners for s in seen} == {20}

        # Another resource under the same name is not the scale set a runner was planned for.
        with pytest.raises(ScaleSetGone):
            runtime.scale_sets.get(scale_set.key, None, uid="another-uid")
    finally:
        runtime.close()
