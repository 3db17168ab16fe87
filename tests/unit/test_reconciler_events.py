"""Which RunnerScaleSet changes the reconciler acts on at once: any change but the status it
writes itself (during a scale-up it writes progress on every pass; reconciling again at once
for each of those writes kept the reconciler busy listing pods the whole time)."""

from __future__ import annotations

import copy
from typing import Any

from provisioner.reconciler.loop import spec_fingerprint


def scale_set(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": "u-1",
            "generation": 3,
            "resourceVersion": "100",
            "finalizers": ["provisioner.dev/runners"],
            "labels": {"team": "x"},
            "annotations": {},
        },
        "spec": {"replicas": 5},
        "status": dict(status),
    }


def test_a_status_write_is_not_a_change_to_act_on_at_once() -> None:
    before = scale_set(ready=1)
    after = scale_set(ready=2)
    after["metadata"]["resourceVersion"] = "101"

    assert spec_fingerprint(after) == spec_fingerprint(before)


def test_every_other_change_is() -> None:
    before = scale_set()
    changes = {
        "generation": 4,
        "deletionTimestamp": "2026-12-02T15:00:00Z",
        "finalizers": [],
        "labels": {"team": "y"},
        "annotations": {"provisioner.dev/paused": "true"},
        "uid": "u-2",
    }
    for field, value in changes.items():
        after = copy.deepcopy(before)
        after["metadata"][field] = value
        assert spec_fingerprint(after) != spec_fingerprint(before), field
