"""Benchmark flags and the runs they plan."""

from __future__ import annotations

import argparse

import pytest

from provisioner.bench.cases import (
    BenchCase,
    concurrencies,
    latency_ms,
    modes,
    plan_cases,
    runner_counts,
)
from provisioner.bench.session import BenchSession
from provisioner.config import Settings


def test_runner_counts_are_sorted_and_deduplicated() -> None:
    assert runner_counts("500, 10,100,10") == [10, 100, 500]


@pytest.mark.parametrize("text", ["0", "-1", "ten", "10,,50", "10001"])
def test_bad_runner_counts_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        runner_counts(text)


def test_modes_keep_the_ratio_order_whatever_the_order_given() -> None:
    assert modes("limit,sequential") == ["sequential", "limit"]
    assert modes("limit,parallel,fixed") == ["fixed", "parallel", "limit"]


def test_unknown_mode_is_named() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="'fast'"):
        modes("parallel,fast")


def test_latency_accepts_zero_and_refuses_negative() -> None:
    assert latency_ms("0") == 0.0
    with pytest.raises(argparse.ArgumentTypeError):
        latency_ms("-5")


def test_concurrency_must_be_positive() -> None:
    assert concurrencies("50,10") == [10, 50]
    with pytest.raises(argparse.ArgumentTypeError):
        concurrencies("0")


def test_sequential_runs_once_per_n_and_the_others_per_concurrency() -> None:
    plan = plan_cases(["sequential", "parallel", "limit"], [10, 100], [10, 50])
    assert plan[:2] == [BenchCase("sequential", 10, 1), BenchCase("sequential", 100, 1)]
    assert plan[2:6] == [
        BenchCase("parallel", 10, 10),
        BenchCase("parallel", 100, 10),
        BenchCase("parallel", 10, 50),
        BenchCase("parallel", 100, 50),
    ]
    assert len(plan) == 10


def test_each_run_gets_its_own_scale_set_name() -> None:
    plan = plan_cases(["sequential", "parallel", "limit"], [10, 100], [10, 50])
    names = [case.scale_set_name for case in plan]
    assert len(set(names)) == len(names)
    assert "parallel-c50-n100" in names


def test_the_fixed_mode_turns_adaptive_concurrency_off() -> None:
    session = BenchSession(
        None, "bench", Settings(), workers=2, github_latency_ms=300.0, timeout=60, grace=60
    )  # type: ignore[arg-type]
    assert session.settings_for("parallel", 20).adaptive_concurrency is True
    assert session.settings_for("fixed", 20).adaptive_concurrency is False
    assert session.settings_for("fixed", 20).runner_creation_concurrency == 20
    assert session.setup_for("fixed", 20).workers is not None
