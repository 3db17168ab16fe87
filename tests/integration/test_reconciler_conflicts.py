"""A RunnerScaleSet changed by someone else while the reconciler works on it (a user who
creates one and scales it at once, another controller labelling it): the reconciler's write
with the version it read is refused (409), and the pass starts again from a fresh read."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from provisioner.kube.crd import GROUP, PLURAL, VERSION
from tests.fixtures.pipeline import TestPipeline as Pipeline
from tests.fixtures.pipeline import wait_until

pytestmark = pytest.mark.integration

# Edits go on until a pass met one, or this long.
EDITING_SECONDS_AT_MOST = 60.0
MET = "changed while it was reconciled"


def _edit_constantly(pipeline: Pipeline, name: str, stop: threading.Event) -> int:
    """Changes an annotation of the scale set as fast as the API server takes it."""
    edits = 0
    while not stop.is_set():
        pipeline.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            pipeline.namespace,
            PLURAL,
            name,
            {"metadata": {"annotations": {"example.com/edit": str(edits)}}},
        )
        edits += 1
    return edits


def _met_or_strip_finalizer(pipeline: Pipeline, name: str, log_file: Path) -> bool:
    """Whether a pass has met a change; if not, the scale set's finalizer is taken away (as
    another controller might), so that the next pass writes it again with the version it
    read. Only that write carries the version: the first pass alone gives one chance, short
    enough (read, then write) that edits missed it on the CI machine."""
    if log_file.exists() and MET in log_file.read_text():
        return True
    if pipeline.scale_set(name)["metadata"].get("finalizers"):
        pipeline.custom.patch_namespaced_custom_object(
            GROUP, VERSION, pipeline.namespace, PLURAL, name, {"metadata": {"finalizers": []}}
        )
    return False


def test_a_scale_set_changed_during_a_pass_is_reconciled_again_at_once_without_an_error(
    pipeline,
):
    pipeline.apply_scale_set(replicas=3)
    # Edited from before the reconciler's first pass until one met a change: a pass's write of
    # the finalizer, with the version it read, is then refused.
    stop = threading.Event()
    editor = threading.Thread(target=_edit_constantly, args=(pipeline, "runners", stop))
    editor.start()
    log_file = pipeline.log_dir / "reconciler-0.log"
    try:
        pipeline.start_workers(1)
        pipeline.start_reconciler()
        wait_until(
            lambda: _met_or_strip_finalizer(pipeline, "runners", log_file),
            EDITING_SECONDS_AT_MOST,
            "a pass that met a change (else the test proves nothing)",
        )
    finally:
        stop.set()
        editor.join()

    pipeline.wait_for_runners(3, timeout=60)
    log = log_file.read_text()
    assert "ERROR" not in log, log
    pipeline.scale("runners", 0)
    pipeline.wait_for_runners(0, timeout=60)
