"""The harness's pure parts: statistics, ratios, selection, timing contract. No timing asserts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks import registry
from benchmarks.markdown import render
from benchmarks.stats import conservative_median, overhead_ratio, summarise
from benchmarks.suite import NoProgress, SuiteConfig, run_workload
from benchmarks.timing import run_interleaved, time_once
from benchmarks.workload import SECONDS, TASKS_PER_S, THROUGHPUT, Trial, Workload


def test_conservative_median_is_a_real_repeat_and_the_slower_middle_one() -> None:
    assert conservative_median(SECONDS, [3.0, 1.0, 2.0]) == 2.0
    assert conservative_median(SECONDS, [1.0, 2.0]) == 2.0  # slower of the middle two
    assert conservative_median(TASKS_PER_S, [100.0, 200.0]) == 100.0  # lower throughput


def test_ratio_reads_as_overhead_for_both_directions() -> None:
    # Twice as slow is 2x whether the figure is a time or a rate.
    assert overhead_ratio(SECONDS, measured=2.0, baseline=1.0) == 2.0
    assert overhead_ratio(TASKS_PER_S, measured=50.0, baseline=100.0) == 2.0
    assert overhead_ratio(SECONDS, measured=1.0, baseline=0.0) is None


def test_summary_best_follows_the_figure_direction() -> None:
    assert summarise(SECONDS, [2.0, 1.0])["best"] == 1.0
    assert summarise(TASKS_PER_S, [2.0, 1.0])["best"] == 2.0


def test_a_family_name_selects_its_members() -> None:
    available = registry.discover()
    names = [w.name for w in registry.select(available, ["data"])]
    assert names == ["data-small", "data-large"]
    with pytest.raises(registry.UnknownWorkload):
        registry.select(available, ["nope"])


def test_a_trial_leaking_a_return_value_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="must return None or a mapping"):
        time_once(lambda: 42)  # type: ignore[arg-type, return-value]


def test_one_failing_engine_does_not_stop_the_others() -> None:
    calls = {"ok": 0}

    def ok() -> None:
        calls["ok"] += 1

    def broken() -> None:
        raise RuntimeError("boom")

    outcomes = run_interleaved({"ok": ok, "broken": broken}, repeats=3, warmup=True)
    assert isinstance(outcomes["broken"], RuntimeError)
    ok_measurements = outcomes["ok"]
    assert isinstance(ok_measurements, list) and len(ok_measurements) == 3
    assert calls["ok"] == 4  # warm-up plus three repeats


def test_unavailable_runner_becomes_an_error_row_beside_a_measured_baseline() -> None:
    def run(runner: str, n: int) -> Trial:
        raise RuntimeError("headwater runtime not importable: pretend")

    def baseline(engine: str, n: int) -> Trial:
        return lambda: {"seconds": 0.5}

    workload = Workload(
        name="fake", description="", sizes={"quick": 10, "full": 10}, run=run, baseline=baseline,
        figures=THROUGHPUT,
    )
    result = run_workload(workload, SuiteConfig(mode="quick"), NoProgress())
    assert result["baselines"]["threadpool"]["figures"]["tasks_per_s"]["median"] == 20.0
    assert [row["error"] for row in result["rows"]] == ["headwater runtime not importable: pretend"] * 2


def test_a_ratio_target_travels_to_the_json_and_the_markdown_table() -> None:
    # Issue #9's targets are ratios ("within 1.5x of the raw engine"), not absolute figures.
    figure = replace(TASKS_PER_S, ratio_target=1.5)
    workload = Workload(
        name="fake", description="", sizes={"quick": 10, "full": 10},
        run=lambda runner, n: (lambda: {"seconds": 1.0}),
        baseline=lambda engine, n: (lambda: {"seconds": 0.5}),
        figures=(figure,), runners={"engine+recording": "engine"},
    )  # fmt: skip
    result = run_workload(workload, SuiteConfig(mode="quick"), NoProgress())
    assert result["figure_specs"][0]["ratio_target"] == 1.5
    cell = result["rows"][0]["figures"]["tasks_per_s"]
    assert cell["ratio"]["median"] == 2.0 and not figure.meets_ratio_target(2.0)
    machine = {"date": "today", "cpu_count": 2, "cpu_model": "cpu", "os": "os", "python": "3", "packages": {}}
    table = render({"machine": machine, "suite": {"mode": "quick"}, "workloads": [result]})
    assert "| 2.00× (target ≤ 1.5×: missed) |" in table
