"""resume: how fast a resume reaches a paused flow (issue #14). Select it with ``resume``.

Every headwater row runs `scripts/resume_latency.py` in a fresh process recording into a home
of its own, so the suite's process and its embedded service are not involved.

* ``resume-latency``: one flow pauses N + 1 times for typed input (the first, untimed, warms
  up); each time `resume_flow_run` is called once the run is PAUSED, and the figure is the
  time from that call to the flow's body continuing after its pause, p50 / p99.
  ``in-process``: the flow in a thread of the resuming process, its embedded service taking
  the call. ``doorbell``: the flow in another process, no server: the resume is validated and
  written into the database and the flow process's doorbell rung (the CLI's path).
  ``server``: the flow in another process, both recording into a standalone server of this
  workload's own. Baseline: a `threading.Event` set by one thread, seen by another, as for
  ``cancel-latency``. Target: p99 < 100 ms.
"""

from __future__ import annotations

import json
import os
import tempfile

from benchmarks.children import run_python, script, start_server
from benchmarks.engines import require_headwater
from benchmarks.workload import Figure, Trial, Workload
from benchmarks.workloads.cancel import baseline_latency  # the same floor: a hand-over between threads

TOKEN = "bench-resume-token"
LATENCY_TARGET_MS = 100.0
RUNNERS = ("in-process", "doorbell", "server")
_server: list[str] = []


def _child_env(runner: str) -> dict[str, str]:
    env = {**os.environ, "HEADWATER_HOME": tempfile.mkdtemp(prefix="headwater-bench-resume-")}
    env.pop("HEADWATER_API_URL", None)
    env.pop("HEADWATER_RECORD", None)  # a pause needs recording: the service holds it
    if runner == "server":
        if not _server:
            _server.append(start_server(TOKEN, "headwater-bench-resume-server-"))
        env.update({"HEADWATER_API_URL": _server[0], "HEADWATER_API_TOKEN": TOKEN})
    return env


def run_latency(runner: str, n: int) -> Trial:
    require_headwater()
    if runner not in RUNNERS:
        raise ValueError(f"no resume-latency runner named {runner!r} (has: {', '.join(RUNNERS)})")
    env = _child_env(runner)

    def trial() -> dict[str, float]:
        out = run_python([str(script("resume_latency.py")), runner, str(n)], env=env)
        report: dict[str, float] = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
        return report

    return trial


FIGURES: tuple[Figure, ...] = (
    Figure("p50_ms", "resume→went on p50 ms", lambda raw, n: raw["p50_ms"]),
    Figure("p99_ms", "resume→went on p99 ms", lambda raw, n: raw["p99_ms"], target=LATENCY_TARGET_MS),
    Figure("max_ms", "max ms", lambda raw, n: raw["max_ms"], in_table=False),
    Figure("seconds", "s", lambda raw, n: raw.get("seconds", 0.0), in_table=False),
)

WORKLOAD = Workload(
    name="resume-latency",
    description="one flow paused N times, resumed with typed input: resume_flow_run to its body going on",
    sizes={"tiny": 5, "quick": 30, "full": 100},
    run=run_latency,
    baseline=baseline_latency,
    figures=FIGURES,
    runners=dict.fromkeys(RUNNERS, "event"),
    size_unit="tries",
    env={},
    warmup=False,  # each trial is a fresh process, warmed up by its own untimed first pause
    repeats={"tiny": 1, "quick": 1, "full": 1},
    order=100,
)
