"""Runs selected workloads: each baseline once, then each headwater runner, into plain dicts.

The result of one workload is a JSON-ready dict (the shape is documented in README.md):
every figure of every runner with min/median/max/best over repeats, the same figure of the
baseline measured in the same run, and the overhead ratio between the two. A failing engine
becomes an ``error`` entry on its row; it never stops the suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchmarks.engines import environment
from benchmarks.stats import figure_values, ratios, summarise
from benchmarks.timing import run_interleaved
from benchmarks.workload import Trial, TrialFactory, Workload

DEFAULT_REPEATS = {"tiny": 1, "quick": 2, "full": 3}


class ProgressSink(Protocol):
    """Where the suite reports progress: one step per warm-up or measured trial."""

    def begin(self, label: str) -> None: ...

    def advance(self) -> None: ...


class NoProgress:
    """A ProgressSink that shows nothing."""

    def begin(self, label: str) -> None:
        pass

    def advance(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class SuiteConfig:
    """How big and how often: the mode picks sizes and repeats, explicit values override."""

    mode: str = "full"  # "tiny", "quick" or "full"
    repeats: int | None = None
    size: int | None = None

    def size_of(self, workload: Workload) -> int:
        return self.size if self.size is not None else workload.size(self.mode)

    def repeats_of(self, workload: Workload) -> int:
        if self.repeats is not None:
            return self.repeats
        return workload.repeats.get(self.mode, DEFAULT_REPEATS[self.mode])

    def steps_of(self, workload: Workload) -> int:
        """Progress steps a workload takes: warm-up plus repeats, per engine."""
        per_engine = self.repeats_of(workload) + (1 if workload.warmup else 0)
        return per_engine * (len(workload.runners) + len(workload.baselines()))


@dataclass(slots=True)
class Series:
    """Raw measurements of one engine on one workload, or the error that stopped it."""

    engine: str
    measurements: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None


def describe(exc: Exception) -> str:
    """An error message for a row: the import problem as is, anything else with its type."""
    text = str(exc)
    return text if "not importable" in text else f"{type(exc).__name__}: {text}"


def run_workload(workload: Workload, config: SuiteConfig, progress: ProgressSink) -> dict[str, Any]:
    """Measure every baseline and runner of one workload, interleaved, and compare them."""
    n, repeats = config.size_of(workload), config.repeats_of(workload)
    engines: dict[str, tuple[TrialFactory, str]] = {
        f"baseline {name}": (workload.baseline, name) for name in workload.baselines()
    }
    engines.update({f"headwater {name}": (workload.run, name) for name in workload.runners})
    series: dict[str, Series] = {}
    trials: dict[str, Trial] = {}
    steps_per_engine = repeats + (1 if workload.warmup else 0)
    with environment(dict(workload.env)):
        for label, (factory, name) in engines.items():
            series[label] = Series(name)
            try:
                trials[label] = factory(name, n)  # setup: decorating, building flows; untimed
            except Exception as exc:  # e.g. headwater not importable: report, keep baselines
                series[label].error = describe(exc)
                for _ in range(steps_per_engine):
                    progress.advance()

        def step(label: str) -> None:
            progress.begin(f"{workload.name} · {label}")
            progress.advance()

        outcomes = run_interleaved(trials, repeats=repeats, warmup=workload.warmup, on_step=step)
    for label, outcome in outcomes.items():
        if isinstance(outcome, Exception):
            series[label].error = describe(outcome)
        else:
            series[label].measurements = outcome
    baselines = {name: series[f"baseline {name}"] for name in workload.baselines()}
    runners = {name: series[f"headwater {name}"] for name in workload.runners}
    return workload_result(workload, n, repeats, baselines, runners)


def run_suite(
    workloads: Sequence[Workload], config: SuiteConfig, progress: ProgressSink
) -> list[dict[str, Any]]:
    """Run workloads one after another, in suite order."""
    return [run_workload(workload, config, progress) for workload in workloads]


def summarise_series(workload: Workload, series: Series, n: int) -> dict[str, Any]:
    """Every figure of one engine's series, summarised over repeats."""
    if series.error is not None or not series.measurements:
        return {}
    summaries: dict[str, Any] = {}
    for figure in workload.figures:
        summaries[figure.key] = {
            "unit": figure.unit,
            "higher_is_better": figure.higher_is_better,
            "target": figure.target,
            "ratio_target": figure.ratio_target,
            **summarise(figure, figure_values(figure, series.measurements, n)),
        }
    return summaries


def workload_result(
    workload: Workload,
    n: int,
    repeats: int,
    baselines: dict[str, Series],
    runners: dict[str, Series],
) -> dict[str, Any]:
    """The JSON-ready result of one workload: baselines, then one row per runner."""
    baseline_figures = {name: summarise_series(workload, s, n) for name, s in baselines.items()}
    rows = []
    for runner, series in runners.items():
        baseline_name = workload.runners[runner]
        figures = summarise_series(workload, series, n)
        for figure in workload.figures:
            if figure.key not in figures:
                continue
            base = baseline_figures[baseline_name].get(figure.key)
            figures[figure.key]["baseline"] = _stats_only(base)
            figures[figure.key]["ratio"] = ratios(figure, figures[figure.key], base) if base else None
        rows.append(
            {
                "runner": runner,
                "engine": "headwater",
                "baseline": baseline_name,
                "error": series.error,
                "measurements": series.measurements,
                "figures": figures,
            }
        )
    return {
        "name": workload.name,
        "description": workload.description,
        "n": n,
        "size_unit": workload.size_unit,
        "repeats": repeats,
        "warmup": workload.warmup,
        "env": dict(workload.env),
        "headline": workload.figures[0].key,
        "figure_specs": [
            {
                "key": figure.key,
                "unit": figure.unit,
                "higher_is_better": figure.higher_is_better,
                "in_table": figure.in_table,
                "target": figure.target,
                "ratio_target": figure.ratio_target,
            }
            for figure in workload.figures
        ],
        "baselines": {
            name: {
                "error": series.error,
                "measurements": series.measurements,
                "figures": baseline_figures[name],
            }
            for name, series in baselines.items()
        },
        "rows": rows,
    }


def _stats_only(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {key: summary[key] for key in ("min", "median", "max", "best")}
