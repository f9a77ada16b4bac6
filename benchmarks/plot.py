"""Throughput against number of tasks, per runner and baseline, drawn to a PNG.

matplotlib is optional (the ``plot`` extra): without it the sweep still runs and lands in the
JSON, and the suite says how to get the picture.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.suite import ProgressSink, SuiteConfig, run_workload
from benchmarks.workload import Workload

SWEEP_SIZES = {"tiny": (10, 50), "quick": (100, 1_000, 2_000), "full": (100, 1_000, 10_000)}
FIGURE = "tasks_per_s"


def sweep_steps(workload: Workload, config: SuiteConfig) -> int:
    return config.steps_of(workload) * len(SWEEP_SIZES[config.mode])


def run_sweep(workload: Workload, config: SuiteConfig, progress: ProgressSink) -> dict[str, Any]:
    """Run ``workload`` at each sweep size; return tasks/s medians per engine and size."""
    sizes = SWEEP_SIZES[config.mode]
    series: dict[str, list[float | None]] = {}
    for n in sizes:
        result = run_workload(workload, dataclasses.replace(config, size=n), progress)
        for name, baseline in result["baselines"].items():
            series.setdefault(f"{name} (baseline)", []).append(_median(baseline["figures"]))
        for row in result["rows"]:
            series.setdefault(f"headwater {row['runner']}", []).append(_median(row["figures"]))
    return {"workload": workload.name, "figure": FIGURE, "sizes": list(sizes), "series": series}


def _median(figures: dict[str, Any]) -> float | None:
    return figures[FIGURE]["median"] if FIGURE in figures else None


def draw(sweep: dict[str, Any], path: Path, *, title_suffix: str = "") -> str:
    """Write the PNG; return a one-line message saying what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install 'headwater[plot]')"
    figure, axes = plt.subplots(figsize=(7, 4.5))
    sizes: Sequence[int] = sweep["sizes"]
    for label, values in sweep["series"].items():
        points = [(n, v) for n, v in zip(sizes, values, strict=True) if v is not None]
        if points:
            style = "--" if "baseline" in label else "-"
            axes.plot(*zip(*points, strict=True), style, marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("number of no-op tasks in the flow")
    axes.set_ylabel("tasks per second (median)")
    axes.set_title(f"{sweep['workload']}: throughput vs flow size{title_suffix}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return f"plot written to {path}"
