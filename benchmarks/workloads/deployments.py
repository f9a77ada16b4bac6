"""deploy: deployment runs on real worker processes (issue #15). Select with ``deploy``.

Each headwater row runs `scripts/deploy_runs.py` in a fresh process, against a standalone
server of this workload's own, with its own worker processes.

* ``deploy-latency``: N runs one after another on one idle worker: from `run_deployment` to
  the flow's first line, p50 / p99 (Prefect's process worker takes 5-7 s; the aim is < 1 s).
  Baseline: a fresh interpreter that imports headwater and prints the time, from `Popen` to
  that line: the floor of starting a run in a process of its own.
* ``deploy-throughput``: N runs created at once, started by one worker and by two: runs
  started per s. Baseline: the same N interpreters started one after another.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchmarks.children import run_json, script, start_server
from benchmarks.engines import require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, Workload

TOKEN = "bench-deploy-token"
LATENCY_TARGET_MS = 1000.0
_server: list[str] = []


def _env() -> dict[str, str]:
    if not _server:
        _server.append(start_server(TOKEN, "headwater-bench-deploy-server-"))
    env = {**os.environ, "HEADWATER_API_URL": _server[0], "HEADWATER_API_TOKEN": TOKEN}
    env.pop("HEADWATER_RECORD", None)
    return env



def run_latency(runner: str, n: int) -> Trial:
    require_headwater()
    env = _env()
    return lambda: run_json([str(script("deploy_runs.py")), "latency", str(n)], env=env)


def run_throughput(runner: str, n: int) -> Trial:
    require_headwater()
    workers = {"one-worker": 1, "two-workers": 2}[runner]
    env = _env()
    return lambda: run_json([str(script("deploy_runs.py")), "throughput", str(n), str(workers)], env=env)


_FIRST_LINE = "import headwater, time; print(time.time())"


def _interpreter_ms() -> float:
    asked = time.time()
    out = subprocess.run([sys.executable, "-c", _FIRST_LINE], capture_output=True, text=True, check=True).stdout
    return (float(out.strip()) - asked) * 1e3


def baseline_latency(engine: str, n: int) -> Trial:
    require_baseline(engine, ("interpreter",))

    def trial() -> dict[str, float]:
        found = sorted(_interpreter_ms() for _ in range(n))
        return {"p50_ms": found[len(found) // 2], "p99_ms": found[min(len(found) - 1, int(0.99 * len(found)))],
                "max_ms": found[-1]}  # fmt: skip

    return trial


def baseline_throughput(engine: str, n: int) -> Trial:
    require_baseline(engine, ("interpreter",))

    def trial() -> dict[str, float]:
        started = time.time()
        for _ in range(n):
            _interpreter_ms()
        seconds = time.time() - started
        return {"runs_per_s": n / seconds, "seconds": seconds, "runs": n}

    return trial


WORKLOADS = (
    Workload(
        name="deploy-latency",
        description="N deployment runs on one idle worker: run_deployment to the flow's first line",
        sizes={"tiny": 3, "quick": 6, "full": 30},
        run=run_latency,
        baseline=baseline_latency,
        figures=(
            Figure("p50_ms", "run_deployment→first line p50 ms", lambda raw, n: raw["p50_ms"]),
            Figure("p99_ms", "p99 ms", lambda raw, n: raw["p99_ms"], target=LATENCY_TARGET_MS),
            Figure("max_ms", "max ms", lambda raw, n: raw["max_ms"], in_table=False),
        ),
        runners={"worker": "interpreter"},
        size_unit="runs",
        env={},
        warmup=False,
        repeats={"tiny": 1, "quick": 1, "full": 1},
        order=100,
    ),
    Workload(
        name="deploy-throughput",
        description="N deployment runs created at once: runs started per s by one and two workers",
        sizes={"tiny": 4, "quick": 10, "full": 50},
        run=run_throughput,
        baseline=baseline_throughput,
        figures=(
            Figure("runs_per_s", "runs started/s", lambda raw, n: raw["runs_per_s"], higher_is_better=True),
            Figure("seconds", "s", lambda raw, n: raw["seconds"], in_table=False),
        ),
        runners={"one-worker": "interpreter", "two-workers": "interpreter"},
        size_unit="runs",
        env={},
        warmup=False,
        repeats={"tiny": 1, "quick": 1, "full": 1},
        order=101,
    ),
)
