"""cancel: how fast a cancel reaches a running flow, and what the control stream costs idle
(issue #14). Select the family with ``cancel``.

Every headwater row runs `scripts/cancel_latency.py` in a fresh process recording into a home
of its own, so the suite's process and its embedded service are not involved.

* ``cancel-latency``: N tries, each a flow whose async task waits a minute, cancelled with
  `cancel_flow_run`; the figure is the time from that call to the flow acting (its
  `on_cancellation` hook), p50 / p99. ``in-process``: another thread of the flow's process.
  ``doorbell``: another process (`scripts/cancel_issuer.py`) on the same home, no server: the
  request is written into the database and the flow process's doorbell rung.
  ``server``: another process, both recording into a standalone server of this workload's
  own. Baseline: a `threading.Event` set by one thread, seen by another (the floor of any
  hand-over between threads). Target: p99 < 100 ms.
* ``cancel-idle``: one process, its control stream open and no flow running, then the same
  process after closing the stream, SECONDS each: CPU ms per s of each and their difference,
  the stream's own share. Baseline: a bare interpreter sleeping.
"""

from __future__ import annotations

import threading
import time

from benchmarks.children import run_json, script, start_server
from benchmarks.engines import require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, Workload
from benchmarks.workloads._slots import percentile

TOKEN = "bench-cancel-token"
LATENCY_TARGET_MS = 100.0
_server: list[str] = []


def _child_env(runner: str) -> dict[str, str]:
    import os
    import tempfile

    env = {**os.environ, "HEADWATER_HOME": tempfile.mkdtemp(prefix="headwater-bench-cancel-")}
    env.pop("HEADWATER_API_URL", None)
    env.pop("HEADWATER_RECORD", None)  # a cancel needs recording: it goes through the service
    if runner == "server":
        if not _server:
            _server.append(start_server(TOKEN, "headwater-bench-cancel-server-"))
        env.update({"HEADWATER_API_URL": _server[0], "HEADWATER_API_TOKEN": TOKEN})
    return env



def run_latency(runner: str, n: int) -> Trial:
    require_headwater()
    if runner not in ("in-process", "doorbell", "server"):
        raise ValueError(f"no cancel-latency runner named {runner!r} (has: in-process, doorbell, server)")
    env = _child_env(runner)
    return lambda: run_json([str(script("cancel_latency.py")), runner, str(n)], env=env)


def baseline_latency(engine: str, n: int) -> Trial:
    require_baseline(engine, ("event",))

    def trial() -> dict[str, float]:
        found = []
        for _ in range(n):
            event, seen = threading.Event(), []
            waiter = threading.Thread(target=lambda: (event.wait(), seen.append(time.perf_counter())))
            waiter.start()
            time.sleep(0.001)
            asked = time.perf_counter()
            event.set()
            waiter.join()
            found.append((seen[0] - asked) * 1e3)
        found.sort()
        return {"p50_ms": percentile(found, 0.5), "p99_ms": percentile(found, 0.99), "max_ms": found[-1]}

    return trial


def run_idle(runner: str, seconds: int) -> Trial:
    require_headwater()
    if runner != "stream":
        raise ValueError(f"no cancel-idle runner named {runner!r} (has: stream)")
    env = _child_env(runner)
    return lambda: run_json([str(script("cancel_latency.py")), "idle", str(seconds)], env=env)


_SLEEPING = (
    "import json, resource, sys, time\n"
    "used = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])\n"
    "before = used(); time.sleep(float(sys.argv[1])); spent = (used() - before) * 1e3 / float(sys.argv[1])\n"
    "print(json.dumps({'with_stream_ms_per_s': spent, 'without_stream_ms_per_s': spent, 'stream_ms_per_s': 0.0}))\n"
)


def baseline_idle(engine: str, seconds: int) -> Trial:
    require_baseline(engine, ("sleeping",))
    return lambda: run_json(["-c", _SLEEPING, str(seconds)])


LATENCY_FIGURES: tuple[Figure, ...] = (
    Figure("p50_ms", "cancel→acted p50 ms", lambda raw, n: raw["p50_ms"]),
    Figure("p99_ms", "cancel→acted p99 ms", lambda raw, n: raw["p99_ms"], target=LATENCY_TARGET_MS),
    Figure("max_ms", "max ms", lambda raw, n: raw["max_ms"], in_table=False),
    Figure("seconds", "s", lambda raw, n: raw.get("seconds", 0.0), in_table=False),
)

IDLE_FIGURES: tuple[Figure, ...] = (
    Figure("stream_ms_per_s", "stream CPU ms/s", lambda raw, n: raw["stream_ms_per_s"]),
    Figure("with_stream_ms_per_s", "CPU ms/s, stream open", lambda raw, n: raw["with_stream_ms_per_s"]),
    Figure("without_stream_ms_per_s", "CPU ms/s, stream closed", lambda raw, n: raw["without_stream_ms_per_s"]),
    Figure("seconds", "s", lambda raw, n: raw.get("seconds", 0.0), in_table=False),
)

WORKLOADS = (
    Workload(
        name="cancel-latency",
        description="N flows cancelled while a task runs: cancel_flow_run to the flow acting",
        sizes={"tiny": 5, "quick": 30, "full": 100},
        run=run_latency,
        baseline=baseline_latency,
        figures=LATENCY_FIGURES,
        runners={"in-process": "event", "doorbell": "event", "server": "event"},
        size_unit="tries",
        env={},
        warmup=False,  # each trial is a fresh process
        repeats={"tiny": 1, "quick": 1, "full": 1},
        order=98,
    ),
    Workload(
        name="cancel-idle",
        description="one process idle with its control stream open, then closed: CPU per s",
        sizes={"tiny": 1, "quick": 3, "full": 5},
        run=run_idle,
        baseline=baseline_idle,
        figures=IDLE_FIGURES,
        runners={"stream": "sleeping"},
        size_unit="s",
        env={},
        warmup=False,
        repeats={"tiny": 1, "quick": 1, "full": 1},
        order=99,
    ),
)
