"""Prometheus metrics of several worker processes during a batch, scraped over HTTP."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from provisioner.devenv.procs import free_port

pytestmark = pytest.mark.integration


def _created(port: int, scale_set: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "provisioner_runner_creations":
            continue
        for sample in family.samples:
            if (
                sample.name.endswith("_total")
                and sample.labels.get("outcome") == "created"
                and sample.labels.get("scale_set") == scale_set
            ):
                total += sample.value
    return total


def test_two_workers_count_each_creation_once(pipeline):
    ports = [free_port(), free_port()]
    for port in ports:
        pipeline.start_workers(1, env={"PROVISIONER_METRICS_PORT": str(port)})
    pipeline.start_reconciler()
    pipeline.apply_scale_set(replicas=24)
    pipeline.wait_for_runners(24)

    scale_set = f"{pipeline.namespace}/runners"
    per_worker = [_created(port, scale_set) for port in ports]
    assert sum(per_worker) == 24, per_worker
    for port in ports:
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
