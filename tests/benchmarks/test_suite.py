"""Smoke test of the benchmark suite: it runs end to end and its JSON has the documented shape.

No timing assertions: this checks the harness, not the machine. Tiny sizes keep it fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIGURE_STATS = {"min", "median", "max", "best", "values"}

# Each suite run is a subprocess with its own timeout: 120 s for the small runs and `--list`,
# 600 s for every workload at tiny size, which took 177 s on a quiet 2-core machine (real
# servers, worker processes, a Dask cluster and Ray each start at least once).
# pytest-timeout must stay above what a test's subprocesses may take, or a slow but healthy
# run fails as a pytest timeout. It counts fixtures too, and the module-scoped `document`
# fixture runs inside whichever test first uses it, so every test here gets one budget above
# the largest sum (the whole run plus a `--list`: 720 s).
WHOLE_SUITE_TIMEOUT = 600
pytestmark = pytest.mark.timeout(900)


def run_suite(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Module-scoped fixtures run before the autouse HEADWATER_HOME fixture: isolate here too.
    with tempfile.TemporaryDirectory(prefix="bench-test-home-") as home:
        return subprocess.run(
            [sys.executable, "-m", "benchmarks", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "HEADWATER_HOME": home, **(env or {})},
        )


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    completed = run_suite(
        "submit", "chain", "--tiny", "--repeats", "1", "--json", str(out), "--no-progress"
    )
    assert completed.returncode == 0, completed.stderr
    assert "submit" in completed.stdout and "chain" in completed.stdout  # the table
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def test_machine_info_is_recorded(document: dict[str, Any]) -> None:
    machine = document["machine"]
    assert document["schema_version"] == 1
    for key in ("cpu_count", "cpu_model", "memory_bytes", "os", "python", "packages", "date"):
        assert key in machine
    assert document["suite"]["mode"] == "tiny"


def test_every_figure_sits_beside_its_baseline(document: dict[str, Any]) -> None:
    workloads = {w["name"]: w for w in document["workloads"]}
    assert set(workloads) == {"submit", "chain"}
    for workload in workloads.values():
        assert workload["n"] >= 1 and workload["repeats"] == 1
        threadpool = workload["baselines"]["threadpool"]
        assert threadpool["error"] is None, threadpool["error"]
        assert FIGURE_STATS <= set(threadpool["figures"][workload["headline"]])
        assert {row["runner"] for row in workload["rows"]} == {"sequential", "concurrent"}
        for row in workload["rows"]:
            assert row["baseline"] == "threadpool"
            if row["error"] is not None:
                # The runtime may be absent or broken; the suite must say so, not crash.
                assert row["figures"] == {}
                continue
            for figure in row["figures"].values():
                assert FIGURE_STATS <= set(figure)
                assert set(figure["baseline"]) == {"min", "median", "max", "best"}
                assert figure["ratio"]["median"] > 0


def test_list_names_every_workload() -> None:
    completed = run_suite("--list")
    assert completed.returncode == 0
    core = ("submit", "map", "chain", "fanout", "data-small", "data-large", "coldstart", "memory")
    remote = tuple(f"{e}-{s}" for e in ("dask", "ray") for s in ("map", "fanout", "data-large"))
    for name in core + remote:
        assert name in completed.stdout


def test_unknown_workload_is_a_usage_error() -> None:
    completed = run_suite("no-such-workload")
    assert completed.returncode == 2
    assert "no workload named" in completed.stderr


def test_missing_peer_framework_is_reported_not_fatal(tmp_path: Path) -> None:
    # This interpreter has no Prefect: the suite must say so and still print its table.
    out = tmp_path / "r.json"
    completed = run_suite(
        "chain", "--tiny", "--repeats", "1", "--no-progress", "--peer-python", sys.executable,
        "--json", str(out),
    )
    assert completed.returncode == 0, completed.stderr
    assert "lacks prefect" in completed.stderr
    peer = json.loads(out.read_text())["peer"]
    assert peer["available"] is False and "lacks prefect" in peer["error"]


def test_peer_column_through_the_peer_protocol(tmp_path: Path) -> None:
    # A fake `prefect` on PYTHONPATH stands in for a real install: it checks the peer script's
    # use of the API and the suite's handling of its JSON, not Prefect's speed.
    out = tmp_path / "r.json"
    fake = Path(__file__).parent / "fake_prefect"
    completed = run_suite(
        "submit", "memory", "--tiny", "--repeats", "1", "--no-progress",
        "--peer-python", sys.executable, "--json", str(out),
        env={"PYTHONPATH": str(fake)},
    )
    assert completed.returncode == 0, completed.stderr
    document = json.loads(out.read_text())
    assert document["peer"]["available"] is True, document["peer"]
    for workload in document["workloads"]:
        peer = workload["peers"]["prefect"]
        assert peer["error"] is None, peer["error"]
        assert FIGURE_STATS <= set(peer["figures"][workload["headline"]])
        for row in workload["rows"]:
            if row["error"] is None:
                assert "peer" in row["figures"][workload["headline"]]


@pytest.fixture(scope="module")
def whole_suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every workload once at tiny size, no timing checks: the harness, each workload's setup
    and its own checks (`--strict`: a failed row fails the run). `--quick` is for measuring.
    The workloads by name; the tests below read their families from this one run."""
    out = tmp_path_factory.mktemp("whole") / "tiny.json"
    completed = run_suite(
        "--tiny", "--repeats", "1", "--strict", "--no-progress", "--json", str(out), timeout=WHOLE_SUITE_TIMEOUT
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {w["name"]: w for w in json.loads(out.read_text())["workloads"]}


def family(whole_suite: dict[str, Any], names: set[str]) -> dict[str, Any]:
    assert names <= set(whole_suite), names - set(whole_suite)
    return {name: whole_suite[name] for name in names}


def test_the_whole_suite_runs_every_workload_end_to_end(whole_suite: dict[str, Any]) -> None:
    listed = run_suite("--list").stdout
    assert set(whole_suite) == {line.split()[0] for line in listed.splitlines() if line and not line.startswith(" ")}
    assert_every_row_ran(whole_suite)
    check_dask_and_ray_targets(list(whole_suite.values()))


def check_dask_and_ray_targets(workloads: list[dict[str, Any]]) -> None:
    """Issue #9's goals travel with the Dask and Ray workloads, and data-large measures RSS.

    Not a timing check: a flow process that fetched the bytes its tasks pass on would gain
    about as much as they weigh, far above the 10 MiB target whatever the machine's load.
    """
    engines = [w for w in workloads if w["name"].startswith(("dask-", "ray-"))]
    assert {w["name"] for w in engines} >= {
        f"{engine}-{shape}" for engine in ("dask", "ray") for shape in ("map", "fanout", "data-large")
    }
    for workload in engines:
        specs = {spec["key"]: spec for spec in workload["figure_specs"]}
        if not workload["name"].endswith("-data-large"):
            assert specs[workload["headline"]]["ratio_target"] == 1.5
            continue
        assert workload["headline"] == "added_rss_mib" and specs["added_rss_mib"]["target"] == 10
        moved_mib = workload["n"]
        for row in workload["rows"]:
            added = row["figures"]["added_rss_mib"]["median"]
            assert added < moved_mib / 2, f"{workload['name']}: the flow process gained {added:.0f} MiB"


def assert_every_row_ran(workloads: dict[str, Any]) -> None:
    """No baseline and no row of `workloads` failed, and each row has its headline figure."""
    for workload in workloads.values():
        for name, baseline in workload["baselines"].items():
            assert baseline["error"] is None, f"{workload['name']} {name}: {baseline['error']}"
        for row in workload["rows"]:
            assert row["error"] is None, f"{workload['name']} {row['runner']}: {row['error']}"
            assert FIGURE_STATS <= set(row["figures"][workload["headline"]])


CACHE_WORKLOADS = {"cache-hit", "cache-hash", "cache-hash-large", "cache-rerun"}


def test_cache_workloads_run_at_tiny_size(whole_suite: dict[str, Any]) -> None:
    # Issue #10's workloads end to end. A cache-hit or cache-rerun trial raises when a call it
    # expects to hit misses (or a cold run hits), so a row without error means the cache did.
    workloads = family(whole_suite, CACHE_WORKLOADS)
    hit_spec = {spec["key"]: spec for spec in workloads["cache-hit"]["figure_specs"]}
    assert workloads["cache-hit"]["headline"] == "us_added_per_hit"
    assert hit_spec["us_added_per_hit"]["target"] == 200
    assert {"cold_s", "rerun_s", "rerun_over_cold"} <= {
        spec["key"] for spec in workloads["cache-rerun"]["figure_specs"]
    }
    assert_every_row_ran(workloads)


SLOT_WORKLOADS = {"slots-pairs", "slots-flow", "slots-handoff", "slots-ideal"}


def test_slot_workloads_run_at_tiny_size(whole_suite: dict[str, Any]) -> None:
    # Issue #11's workloads end to end, both slots-pairs rows included (the second starts a
    # standalone server and 8 client processes). A slots-handoff trial raises if two runs
    # under a limit of 1 overlapped, so a row without error means the limit held.
    workloads = family(whole_suite, SLOT_WORKLOADS)
    pairs_runners = {row["runner"] for row in workloads["slots-pairs"]["rows"]}
    assert pairs_runners == {"embedded", "server-8-processes"}
    ideal_spec = {spec["key"]: spec for spec in workloads["slots-ideal"]["figure_specs"]}
    assert workloads["slots-ideal"]["headline"] == "over_ideal"
    assert ideal_spec["over_ideal"]["target"] == 1.5
    assert {"over_untagged", "untagged_tasks_per_s"} <= {
        spec["key"] for spec in workloads["slots-flow"]["figure_specs"]
    }
    assert {"p50_ms", "p99_ms"} <= {spec["key"] for spec in workloads["slots-handoff"]["figure_specs"]}
    assert_every_row_ran(workloads)


LOG_WORKLOADS = {"logs-capture", "logs-storm"}


def test_log_workloads_run_at_tiny_size(whole_suite: dict[str, Any]) -> None:
    # Issue #12's workloads end to end. The logs-capture factory raises unless a capture-on
    # run stored every task's line, and a trial raises if the recorder dropped any, so a row
    # without error means capture did; logs-storm's children read their lines back after
    # exiting, so its counts are what the database holds.
    workloads = family(whole_suite, LOG_WORKLOADS)
    assert_every_row_ran(workloads)
    capture_spec = {spec["key"]: spec for spec in workloads["logs-capture"]["figure_specs"]}
    assert workloads["logs-capture"]["headline"] == "capture_over_noop"
    assert capture_spec["capture_over_noop"]["target"] == 0.2
    assert {"us_per_task_on", "us_per_task_off", "us_per_noop_task"} <= set(capture_spec)
    storm = workloads["logs-storm"]
    storm_spec = {spec["key"]: spec for spec in storm["figure_specs"]}
    assert storm["headline"] == "rss_over_off_mib"
    assert storm_spec["rss_over_off_mib"]["target"] == 200
    assert {row["runner"] for row in storm["rows"]} == {"default-buffer", "buffer-1000"}
    assert storm["baselines"]["capture-off"]["figures"]["stored_lines"]["median"] == 0
    for row in storm["rows"]:
        figures = row["figures"]
        stored, dropped = figures["stored_lines"]["median"], figures["dropped_lines"]["median"]
        assert stored + dropped == storm["n"], row["runner"]
        # Every dropped storm line is told by a stored notice (which may also count an
        # engine line dropped with them).
        assert figures["told_dropped"]["median"] >= dropped, row["runner"]


def test_recorded_throughput_workloads_run_at_tiny_size(whole_suite: dict[str, Any]) -> None:
    # Issue #19's workloads end to end. Each recorded factory reads every task run of an
    # untimed run back from the service and raises unless all are Completed, so a row without
    # error means nothing was lost; the targets are the issue's.
    workloads = family(whole_suite, {"recorded-submit", "recorded-map", "recorded-fanout",
                              "unrecorded-submit", "recorded-flush"})
    assert_every_row_ran(workloads)
    for name in ("recorded-submit", "recorded-map", "recorded-fanout"):
        spec = {s["key"]: s for s in workloads[name]["figure_specs"]}["tasks_per_s"]
        assert (spec["target"], spec["ratio_target"]) == (20_000, 4.0), name
    flush = {s["key"]: s for s in workloads["recorded-flush"]["figure_specs"]}["flush_seconds"]
    assert flush["target"] == 0.5


def test_cancel_workloads_run_at_tiny_size(whole_suite: dict[str, Any]) -> None:
    # Issue #14's figures end to end: a cancel from a thread, from another process through the
    # doorbell and through a standalone server (which the workload starts), and the idle cost.
    workloads = family(whole_suite, {"cancel-latency", "cancel-idle"})
    latency_rows = {row["runner"]: row for row in workloads["cancel-latency"]["rows"]}
    assert set(latency_rows) == {"in-process", "doorbell", "server"}
    for row in (*latency_rows.values(), *workloads["cancel-idle"]["rows"]):
        assert row["error"] is None, row["error"]
    assert {"p50_ms", "p99_ms"} <= set(latency_rows["server"]["figures"])


def test_resume_workload_runs_at_tiny_size(whole_suite: dict[str, Any]) -> None:
    # Issue #14's resume figure end to end: a resume from a thread of the flow's process, from
    # another process through the database and the doorbell, and through a standalone server.
    workloads = family(whole_suite, {"resume-latency"})
    rows = {row["runner"]: row for row in workloads["resume-latency"]["rows"]}
    assert set(rows) == {"in-process", "doorbell", "server"}
    for row in rows.values():
        assert row["error"] is None, row["error"]
        assert {"p50_ms", "p99_ms"} <= set(row["figures"])
