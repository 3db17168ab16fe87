"""Which RunnerScaleSet serves a job: the rule GitHub uses to hand a job to a runner.

GitHub gives a job to a runner that carries every label of the job's ``runs-on``, compared
case-insensitively. Besides its own labels, every self-hosted runner carries the default labels
``self-hosted``, its OS and its architecture. Our runners are Linux pods, so a scale set
implicitly carries ``linux`` and ``x64`` unless its own labels name another OS (``windows``,
``macos``) or architecture (``arm64``, ``arm``), which then replace the default.

When several scale sets qualify, the most specific one wins: the one with the fewest labels
the job did not ask for; ties go to the first by name, then namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

OS_LABELS = frozenset({"linux", "windows", "macos"})
ARCH_LABELS = frozenset({"x64", "arm64", "arm"})
DEFAULT_OS = "linux"
DEFAULT_ARCH = "x64"


class LabelledScaleSet(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Sequence[str]: ...


S = TypeVar("S", bound=LabelledScaleSet)


def normalized(labels: Iterable[str]) -> frozenset[str]:
    return frozenset(label.strip().lower() for label in labels if label.strip())


def effective_labels(labels: Iterable[str]) -> frozenset[str]:
    """A scale set's own labels plus the defaults GitHub gives a self-hosted runner."""
    own = normalized(labels)
    defaults = {"self-hosted"}
    if not own & OS_LABELS:
        defaults.add(DEFAULT_OS)
    if not own & ARCH_LABELS:
        defaults.add(DEFAULT_ARCH)
    return own | defaults


def match_scale_set(job_labels: Iterable[str], scale_sets: Iterable[S]) -> S | None:
    """The scale set that should run a job with ``job_labels``, or None if none can."""
    wanted = normalized(job_labels)
    if not wanted:
        return None
    candidates = [
        scale_set for scale_set in scale_sets if wanted <= effective_labels(scale_set.labels)
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda s: (len(normalized(s.labels) - wanted), s.name, s.namespace),
    )
