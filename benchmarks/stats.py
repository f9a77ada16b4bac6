"""Summaries over repeats (min, median, best) and overhead ratios against a baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.workload import Figure, RawMeasurement


def figure_values(figure: Figure, measurements: Sequence[RawMeasurement], n: int) -> list[float]:
    """The figure computed from each repeat's raw measurements."""
    return [figure.compute(raw, n) for raw in measurements]


def summarise(figure: Figure, values: Sequence[float]) -> dict[str, Any]:
    """min, median, max and best (the most favourable repeat) of one figure over repeats."""
    best = max(values) if figure.higher_is_better else min(values)
    return {
        "min": min(values),
        "median": conservative_median(figure, values),
        "max": max(values),
        "best": best,
        "values": list(values),
    }


def conservative_median(figure: Figure, values: Sequence[float]) -> float:
    """The median repeat; with an even count, the less favourable of the middle two.

    Always an actual repeat rather than a mean of two, so tasks/s and µs/task of one row come
    from the same repeat and their ratios agree; picking the worse one never flatters us.
    """
    best_first = sorted(values, reverse=figure.higher_is_better)
    return best_first[len(best_first) // 2]


def overhead_ratio(figure: Figure, measured: float, baseline: float) -> float | None:
    """How many times worse than the baseline: > 1 means slower or bigger, lower is better.

    For a lower-is-better figure (seconds, µs/task, MiB) it is measured / baseline; for a
    higher-is-better one (tasks/s) it is baseline / measured, which equals the time ratio.
    """
    numerator, denominator = (baseline, measured) if figure.higher_is_better else (measured, baseline)
    if denominator == 0:
        return None
    return numerator / denominator


def ratios(figure: Figure, measured: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """Overhead ratio of the medians and of the best repeats."""
    return {
        "median": overhead_ratio(figure, measured["median"], baseline["median"]),
        "best": overhead_ratio(figure, measured["best"], baseline["best"]),
    }
