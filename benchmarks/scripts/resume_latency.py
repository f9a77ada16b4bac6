"""Resume latency (issue #14); the child of `workloads/resume.py`, also run by hand:

    python resume_latency.py in-process|doorbell|server TRIES

A flow pauses TRIES + 1 times in one run (the first, untimed, warms up imports and
connections), each time waiting for typed input (`RunInput`). This process plays the
operator: it waits until the run is PAUSED, reads the clock and calls `resume_flow_run` with
valid input. The figure is the time from that call to the flow's body continuing after its
pause, p50 / p99 over TRIES. Where the flow runs and how the resume travels:
- `in-process`: the flow runs in a thread here, recording into this process's embedded
  service, and the resume is a call to that service (one process, `perf_counter`);
- `doorbell`: the flow runs in a child process with its embedded service and this process
  has none, so the resume takes the CLI's path (`headwater runs resume`): validated and
  written straight into the database, then the flow's doorbell is rung and its service
  pushes the message;
- `server`: the flow runs in a child process and both record into the standalone server at
  HEADWATER_API_URL; the resume is a `ResumeFlowRun` call to it.
In the last two the flow's clock reads when its body went on (`time.time`: one machine,
one clock). The CLI's own start-up (interpreter and imports, ~0.5 s) is not included: that
is the command's cost, not the channel's. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

CHILD = textwrap.dedent('''
    import sys, time
    from headwater import RunInput, flow, get_run_context, pause_flow_run

    class Approval(RunInput):
        approved: bool

    @flow
    def waits(pauses: int) -> None:
        print("ID", get_run_context().flow_run.id, flush=True)
        for _ in range(pauses):
            pause_flow_run(wait_for_input=Approval, timeout=60)
            print("GO", time.time(), flush=True)

    waits(int(sys.argv[1]))
''')


def other_process(tries: int) -> list[float]:
    """The flow in a child process; the resume from here (the database and the doorbell, or
    the server at HEADWATER_API_URL)."""
    from headwater import resume_flow_run

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tries + 1)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    latencies = []
    try:
        run_id = child.stdout.readline().split()[1]
        is_paused = _paused_reader(run_id)
        for attempt in range(tries + 1):
            while not is_paused():
                time.sleep(0.001)
            asked = time.time()
            resume_flow_run(run_id, {"approved": True}, by="benchmark")
            went_on = float(child.stdout.readline().split()[1])
            if attempt:
                latencies.append((went_on - asked) * 1e3)
    finally:
        if child.wait(30) != 0:
            raise RuntimeError(f"the paused flow's process exited {child.returncode}")
    return sorted(latencies)


def _paused_reader(run_id: str) -> Callable[[], bool]:
    """Whether the run is PAUSED, read where the CLI would read it."""
    if os.environ.get("HEADWATER_API_URL"):
        from headwater.api import StateClient

        client = StateClient(retry_for=5.0)
        return lambda: client.read_flow_run(run_id).state_type == "PAUSED"
    from headwater.api.settings import get_settings
    from headwater.api.storage import Storage

    reader = Storage(get_settings().db_path, read_only=True)
    return lambda: reader.read_flow_run(run_id).state_type == "PAUSED"


def same_process(tries: int) -> list[float]:
    """The flow in a thread of this process; the resume from the main thread."""
    from headwater import RunInput, flow, get_run_context, pause_flow_run, resume_flow_run

    class Approval(RunInput):
        approved: bool

    went_on: list[float] = []
    gone_on = threading.Semaphore(0)
    runs: list[Any] = []

    @flow
    def waits() -> None:
        runs.append(get_run_context().flow_run)
        for _ in range(tries + 1):
            pause_flow_run(wait_for_input=Approval, timeout=60)
            went_on.append(time.perf_counter())
            gone_on.release()

    thread = threading.Thread(target=waits)
    thread.start()
    latencies = []
    for attempt in range(tries + 1):
        while not runs or runs[0].state is None or not runs[0].state.is_paused():
            time.sleep(0.001)
        asked = time.perf_counter()
        resume_flow_run(runs[0].id, {"approved": True}, by="benchmark")
        gone_on.acquire()
        if attempt:
            latencies.append((went_on[-1] - asked) * 1e3)
    thread.join()
    return sorted(latencies)


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def main(mode: str, tries: int) -> None:
    if mode not in ("in-process", "doorbell", "server"):
        raise SystemExit(f"no mode {mode!r} (in-process, doorbell, server)")
    if mode == "server" and not os.environ.get("HEADWATER_API_URL"):
        raise SystemExit("server: set HEADWATER_API_URL (and HEADWATER_API_TOKEN) to a standalone server")
    found = same_process(tries) if mode == "in-process" else other_process(tries)
    print(json.dumps({"p50_ms": _percentile(found, 0.5), "p99_ms": _percentile(found, 0.99),
                      "max_ms": found[-1], "tries": len(found)}))


if __name__ == "__main__":
    os.environ.setdefault("HEADWATER_HOME", tempfile.mkdtemp(prefix="hw-resume-bench-"))
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100)
