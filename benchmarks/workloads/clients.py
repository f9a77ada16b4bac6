"""The state service with many clients, and what recording costs a process beyond its flows.

Three workloads:

* ``clients``: N recording clients connected to one standalone server (`Recorder`s in this
  process, one gRPC channel each), every one having recorded a flow run and flushed; then
  what ``headwater runs ls`` asks (the newest 100 flow runs) is timed while all N stay
  connected. Baseline: the same read with no recording client connected. Target: < 100 ms.
  The server has 128 RPC threads; a client that held one for its life (the old record
  stream) left the 129th without.
* ``idle-cpu``: a fresh process runs one small flow, then idles N seconds; its CPU while idle
  (``benchmarks/scripts/idle_cpu.py``), recording on (embedded default, scratch home) against
  ``HEADWATER_RECORD=0``.
* ``flow-processes``: N processes at once, each running one small flow (``idle_cpu.py 0``),
  recording into one standalone server, against the same processes with recording off.
  Interpreter start and imports are in both; the ratio is what recording adds per process.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.children import SCRIPTS, run_json, scratch_home, script
from benchmarks.engines import require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, Workload
from benchmarks.workloads.service import TOKEN, _standalone_server

LS_MS = Figure("ls_ms", "runs ls ms", lambda raw, n: raw["ls_ms"], target=100.0)
FLUSH_S = Figure("flush_s", "s to flush all", lambda raw, n: raw["flush_s"], in_table=False)
CPU_MS = Figure("cpu_ms_per_s", "CPU ms per idle s", lambda raw, n: raw["cpu_ms_per_s"])
FLOWS_PER_S = Figure("flows_per_s", "flows/s", lambda raw, n: n / raw["seconds"], higher_is_better=True)
SECONDS = Figure("seconds", "s", lambda raw, n: raw["seconds"], in_table=False)
LS_REPEATS = 21


def _ls_latency_ms(url: str) -> float:
    from headwater.api import StateClient

    with StateClient(url, token=TOKEN) as client:
        client.list_flow_runs()  # connect first: the figure is the read, not the handshake
        timings = []
        for _ in range(LS_REPEATS):
            started = time.perf_counter()
            client.list_flow_runs()
            timings.append((time.perf_counter() - started) * 1e3)
    return statistics.median(timings)


def run_clients(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater.api import FlowRunRecord, StateRecord
    from headwater.api.client import Target
    from headwater.api.recorder import Recorder, _GrpcSink

    url = _standalone_server()
    target = Target.resolve(url, TOKEN, None)

    def trial() -> dict[str, float]:
        recorders = [Recorder(_GrpcSink(target), window=1) for _ in range(n)]
        try:
            started = time.perf_counter()
            for recorder in recorders:
                run = FlowRunRecord(_uuid(), "bench-run", "bench", {}, created=time.time())
                recorder.flow_run_created(run)
                recorder.state_changed(
                    StateRecord(run.id, "flow", "RUNNING", "Running", None, time.time(), _uuid())
                )
            for recorder in recorders:
                recorder.flush(60)
            flush_s = time.perf_counter() - started
            return {"ls_ms": _ls_latency_ms(url), "flush_s": flush_s, "seconds": flush_s}
        finally:
            for recorder in recorders:
                recorder.close(10)

    return trial


def baseline_clients(engine: str, n: int) -> Trial:
    require_baseline(engine, ("no-clients",))
    require_headwater()
    url = _standalone_server()

    def trial() -> dict[str, float]:
        return {"ls_ms": _ls_latency_ms(url), "flush_s": 0.0, "seconds": 0.0}

    return trial


def _uuid() -> Any:
    import uuid

    return uuid.uuid4()


def _idle_env(recording: bool) -> dict[str, str]:
    env = {**os.environ, "HEADWATER_HOME": scratch_home(), "HEADWATER_RECORD": "1" if recording else "0"}
    env.pop("HEADWATER_API_URL", None)
    return env


def run_idle(runner: str, n: int) -> Trial:
    require_headwater()
    return _idle_trial(n, recording=True)


def baseline_idle(engine: str, n: int) -> Trial:
    require_baseline(engine, ("not-recording",))
    return _idle_trial(n, recording=False)


def _idle_trial(n: int, *, recording: bool) -> Trial:
    def trial() -> dict[str, float]:
        env = _idle_env(recording)
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            report = run_json([str(script("idle_cpu.py")), str(n)])
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return {"cpu_ms_per_s": float(report["cpu_ms_per_s"]), "seconds": float(n)}

    return trial


def run_processes(runner: str, n: int) -> Trial:
    require_headwater()
    url = _standalone_server()
    env = {**os.environ, "HEADWATER_API_URL": url, "HEADWATER_API_TOKEN": TOKEN, "HEADWATER_RECORD": "1"}
    return lambda: _many_processes(n, env)


def baseline_processes(engine: str, n: int) -> Trial:
    require_baseline(engine, ("unrecorded",))
    env = {**os.environ, "HEADWATER_RECORD": "0"}
    env.pop("HEADWATER_API_URL", None)
    return lambda: _many_processes(n, env)


def _many_processes(n: int, env: dict[str, str]) -> dict[str, float]:
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, str(script("idle_cpu.py")), "0"], env=env, cwd=SCRIPTS,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]
    failed = [c.stderr.read() if c.stderr else b"" for c in children if c.wait() != 0]
    seconds = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"{len(failed)} of {n} flow processes failed: {failed[0][-300:]!r}")
    return {"seconds": seconds}


WORKLOADS = (
    Workload(
        name="clients",
        description="runs ls latency with N recording clients connected to one server",
        sizes={"tiny": 8, "quick": 200, "full": 1_000},
        run=run_clients,
        baseline=baseline_clients,
        figures=(LS_MS, FLUSH_S, SECONDS),
        runners={"recording-clients": "no-clients"},
        size_unit="clients",
        env={},
        warmup=False,
        order=82,
    ),
    Workload(
        name="idle-cpu",
        description="CPU of a process idling N s after one flow, recording on vs off",
        sizes={"tiny": 1, "quick": 2, "full": 5},
        run=run_idle,
        baseline=baseline_idle,
        figures=(CPU_MS, SECONDS),
        runners={"recording": "not-recording"},
        size_unit="s idle",
        env={},
        warmup=False,
        order=83,
    ),
    Workload(
        name="flow-processes",
        description="N processes at once, one small flow each, recorded vs unrecorded",
        sizes={"tiny": 4, "quick": 16, "full": 64},
        run=run_processes,
        baseline=baseline_processes,
        figures=(FLOWS_PER_S, SECONDS),
        runners={"recorded": "unrecorded"},
        size_unit="processes",
        env={},
        warmup=False,
        order=84,
    ),
)
