"""argparse types for bounded numbers: a bad value is refused with one line naming the range
(argparse adds the flag's name)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def bounded_int(low: int, high: int, what: str = "a whole number") -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def bounded_float(
    low: float, high: float, what: str = "a number", low_exclusive: bool = False
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        too_low = value <= low if low_exclusive else value < low
        if too_low or value > high:
            bound = f"more than {low:g}" if low_exclusive else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound} and at most {high:g}, got {value:g}")
        return value

    return parse
