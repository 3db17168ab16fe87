"""What one `provisioner bench` invocation measures: its flags' values and the list of runs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

# In the order the ratios read: the baseline, the product with a fixed budget, the product,
# the floor.
MODES = ("sequential", "fixed", "parallel", "limit")
DEFAULT_MODES = ["sequential", "parallel", "limit"]
# A GitHub runner group holds 10,000 runners.
MAX_RUNNERS = 10_000
MAX_CONCURRENCY = 1000
MAX_LATENCY_MS = 60_000.0


def _whole_numbers(text: str, what: str, maximum: int) -> list[int]:
    values = []
    for part in text.split(","):
        try:
            value = int(part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated whole numbers, got {part.strip()!r}"
            ) from None
        if value < 1 or value > maximum:
            raise argparse.ArgumentTypeError(
                f"each {what} must be between 1 and {maximum}, got {value}"
            )
        values.append(value)
    return sorted(set(values))


def runner_counts(text: str) -> list[int]:
    return _whole_numbers(text, "runner count", MAX_RUNNERS)


def concurrencies(text: str) -> list[int]:
    return _whole_numbers(text, "concurrency", MAX_CONCURRENCY)


def modes(text: str) -> list[str]:
    found = [part.strip() for part in text.split(",")]
    unknown = [mode for mode in found if mode not in MODES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown mode {unknown[0]!r}; use one or more of {', '.join(MODES)}"
        )
    return [mode for mode in MODES if mode in found]


def latency_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {text!r}") from None
    if not 0 <= value <= MAX_LATENCY_MS:
        raise argparse.ArgumentTypeError(
            f"must be between 0 and {MAX_LATENCY_MS:g} ms, got {value:g}"
        )
    return value


def concurrent_requests(text: str) -> int:
    return _count(text, "a number of requests", MAX_CONCURRENCY)


def per_hour(text: str) -> int:
    return _count(text, "calls per hour", 10_000_000)


def per_minute(text: str) -> int:
    return _count(text, "calls per minute", 1_000_000)


def _count(text: str, what: str, most: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < 1 or value > most:
        raise argparse.ArgumentTypeError(f"must be between 1 and {most}, got {value}")
    return value


@dataclass(frozen=True)
class BenchCase:
    mode: str
    runners: int
    # Creations in flight; sequential creation has one at a time.
    concurrency: int

    @property
    def scale_set_name(self) -> str:
        if self.mode == "sequential":
            return f"sequential-n{self.runners}"
        return f"{self.mode}-c{self.concurrency}-n{self.runners}"


def plan_cases(
    selected_modes: list[str], counts: list[int], concurrency_values: list[int]
) -> list[BenchCase]:
    """Runs grouped so the processes are reconfigured as rarely as possible: by mode, then
    by concurrency, smallest N first (a broken setup shows up on the cheapest run)."""
    cases: list[BenchCase] = []
    for mode in selected_modes:
        for concurrency in [1] if mode == "sequential" else concurrency_values:
            cases.extend(BenchCase(mode, n, concurrency) for n in counts)
    return cases
