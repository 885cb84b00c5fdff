"""Small statistics for repeated measurements: percentiles and min / median / max spreads."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import msgspec


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by the nearest-rank method, as wrk and Locust report it."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


class Spread(msgspec.Struct, frozen=True):
    """One figure measured several times."""

    low: float
    median: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The spread of some repeated measurements."""
        if not values:
            raise ValueError("spread of no values")
        return cls(min(values), statistics.median(values), max(values))

    def format(self, fmt: str = "{:.0f}", unit: str = "") -> str:
        """``median (min-max)``; just the value when all repeats agree to the format."""
        median, low, high = (fmt.format(v) for v in (self.median, self.low, self.high))
        if low == high:
            return f"{median}{unit}"
        return f"{median}{unit} ({low}–{high})"


def format_duration_us(value_us: float) -> str:
    """A duration in µs as a short human figure: whole µs below 1 ms, then ms."""
    if value_us < 1000:
        return f"{value_us:.0f} µs"
    if value_us < 10_000:
        return f"{value_us / 1000:.2f} ms"
    return f"{value_us / 1000:.1f} ms"


def format_us(spread: Spread) -> str:
    """A spread of durations in µs, with readable units."""
    median = format_duration_us(spread.median)
    low, high = format_duration_us(spread.low), format_duration_us(spread.high)
    return median if low == high else f"{median} ({low}–{high})"


def format_rate(spread: Spread) -> str:
    """A spread of rates (requests or rows per second), thousands separated."""
    return spread.format("{:,.0f}")


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines: the header, its rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
