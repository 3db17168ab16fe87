"""Job-to-scale-set matching by labels, as GitHub hands jobs to runners."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from provisioner.autoscale.matching import effective_labels, match_scale_set


@dataclass(frozen=True)
class Set:
    name: str
    labels: tuple[str, ...]
    namespace: str = "ns"


LINUX = Set("linux", ("gpu-less",))
GPU = Set("gpu", ("gpu", "cuda"))
ARM = Set("arm", ("arm64",))
WINDOWS = Set("win", ("windows",))


def test_all_job_labels_must_be_on_the_scale_set() -> None:
    assert match_scale_set(["gpu"], [LINUX, GPU]) == GPU
    assert match_scale_set(["gpu", "tpu"], [LINUX, GPU]) is None


def test_comparison_ignores_case() -> None:
    assert match_scale_set(["Self-Hosted", "GPU", "Linux"], [GPU]) == GPU


def test_default_labels_self_hosted_linux_x64() -> None:
    assert effective_labels(["gpu"]) == {"gpu", "self-hosted", "linux", "x64"}
    assert match_scale_set(["self-hosted"], [LINUX]) == LINUX
    assert match_scale_set(["self-hosted", "linux", "x64"], [LINUX]) == LINUX


def test_an_explicit_os_or_arch_replaces_the_default() -> None:
    assert match_scale_set(["x64"], [ARM]) is None
    assert match_scale_set(["linux", "arm64"], [ARM]) == ARM
    assert match_scale_set(["linux"], [WINDOWS]) is None
    assert match_scale_set(["self-hosted", "windows", "x64"], [WINDOWS]) == WINDOWS


def test_github_hosted_labels_match_nothing() -> None:
    assert match_scale_set(["ubuntu-latest"], [LINUX, GPU, ARM]) is None
    assert match_scale_set([], [LINUX]) is None


def test_the_set_with_fewest_extra_labels_wins_then_the_name() -> None:
    plain = Set("zeta", ())
    assert match_scale_set(["self-hosted"], [GPU, LINUX, plain]) == plain
    twin = Set("alpha", ("gpu-less",))
    assert match_scale_set(["self-hosted"], [LINUX, twin]) == twin


label = st.sampled_from(["a", "B", "c", "gpu", "Linux", "x64", "self-hosted"])


@given(st.lists(label, max_size=4), st.lists(st.lists(label, max_size=4), max_size=5))
def test_a_match_always_carries_every_job_label(job: list[str], sets: list[list[str]]) -> None:
    scale_sets = [Set(f"s{i}", tuple(labels)) for i, labels in enumerate(sets)]
    found = match_scale_set(job, scale_sets)
    wanted = {x.lower() for x in job}
    carriers = [s for s in scale_sets if wanted <= effective_labels(s.labels)]
    if not job or not carriers:
        assert found is None
    else:
        assert found in carriers
        assert wanted <= effective_labels(found.labels)
