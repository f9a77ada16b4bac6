"""schedule: the scheduler's cost and punctuality (issue #16). Select with ``schedule``.

* ``schedule-cpu``: N deployments each on a one-minute cron (1,000 / quick 200) in a fresh
  home; the scheduler pass (made once a second in a server or `serve`) run for 3 virtual
  minutes: CPU ms per pass, mean and max, and per run made. Baseline: croniter computing
  each schedule's next tick once a second, the naive floor of deciding what is due.
* ``schedule-delay``: N deployments on a 3 s interval, a standalone server and one worker,
  for about 18 s: from each run's nominal time to its RUNNING state, p50 / p99. Baseline: a
  fresh interpreter importing headwater (a run starts in a process of its own).
"""

from __future__ import annotations

import os

from benchmarks.children import run_json, script, start_server
from benchmarks.engines import require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, Workload
from benchmarks.workloads.deployments import baseline_latency

TOKEN = "bench-schedule-token"
_server: list[str] = []



def run_cpu(runner: str, n: int) -> Trial:
    require_headwater()
    env = {k: v for k, v in os.environ.items() if k != "HEADWATER_API_URL"}
    return lambda: run_json([str(script("schedule_load.py")), "cpu", str(n)], env=env)


_NAIVE = (
    "import json, sys, time\n"
    "from datetime import datetime, timezone\n"
    "from croniter import croniter\n"
    "n = int(sys.argv[1]); start = datetime(2026, 12, 7, tzinfo=timezone.utc); used = []\n"
    "for second in range(180):\n"
    "    cpu = time.process_time()\n"
    "    now = start.timestamp() + second\n"
    "    for i in range(n):\n"
    "        croniter('* * * * *', datetime.fromtimestamp(now, timezone.utc)).get_next(float)\n"
    "    used.append((time.process_time() - cpu) * 1e3)\n"
    "print(json.dumps({'ms_per_pass': sum(used) / len(used), 'max_ms_per_pass': max(used), 'runs': n * 3,"
    " 'ms_per_run': sum(used) / (n * 3)}))\n"
)


def baseline_cpu(engine: str, n: int) -> Trial:
    require_baseline(engine, ("croniter",))
    return lambda: run_json(["-c", _NAIVE, str(n)])


def run_delay(runner: str, n: int) -> Trial:
    require_headwater()
    if not _server:
        _server.append(start_server(TOKEN, "headwater-bench-schedule-server-"))
    env = {**os.environ, "HEADWATER_API_URL": _server[0], "HEADWATER_API_TOKEN": TOKEN}
    return lambda: run_json([str(script("schedule_load.py")), "delay", str(n), "3"], env=env)


def baseline_delay(engine: str, n: int) -> Trial:
    require_baseline(engine, ("interpreter",))
    return baseline_latency(engine, n)


WORKLOADS = (
    Workload(
        name="schedule-cpu",
        description="N deployments on one-minute crons: scheduler CPU per pass (one a second)",
        sizes={"tiny": 50, "quick": 200, "full": 1000},
        run=run_cpu,
        baseline=baseline_cpu,
        figures=(
            Figure("ms_per_pass", "CPU ms per pass", lambda raw, n: raw["ms_per_pass"]),
            Figure("max_ms_per_pass", "max ms per pass", lambda raw, n: raw["max_ms_per_pass"]),
            Figure("ms_per_run", "CPU ms per run made", lambda raw, n: raw["ms_per_run"], in_table=False),
        ),
        runners={"scheduler": "croniter"},
        size_unit="deployments",
        env={},
        warmup=False,
        repeats={"tiny": 1, "quick": 1, "full": 1},
        order=102,
    ),
    Workload(
        name="schedule-delay",
        description="N deployments on a 3 s interval, one worker: nominal time to RUNNING",
        sizes={"tiny": 1, "quick": 3, "full": 10},
        run=run_delay,
        baseline=baseline_delay,
        figures=(
            Figure("p50_ms", "nominal→Running p50 ms", lambda raw, n: raw["p50_ms"]),
            Figure("p99_ms", "p99 ms", lambda raw, n: raw["p99_ms"]),
        ),
        runners={"worker": "interpreter"},
        size_unit="deployments",
        env={},
        warmup=False,
        repeats={"tiny": 1, "quick": 1, "full": 1},
        order=103,
    ),
)
