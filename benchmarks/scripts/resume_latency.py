"""Resume latency (issue #14), run by hand:

    python -m benchmarks.scripts.resume_latency [TRIES]

A flow (embedded state service, a scratch HEADWATER_HOME) pauses TRIES times in one run,
each time waiting for typed input (`RunInput`). This process plays the operator: it waits
until the run is PAUSED, reads the clock and calls `resume_flow_run` with valid input. The
figure is the time from that call to the flow's body continuing after its pause (the flow's
clock; one machine, one clock), p50 / p99 over TRIES, for two placements:

- other process: the flow runs in a child process and this one has no service, so the resume
  takes the CLI's path (`headwater runs resume`): validated and written straight into the
  database, then the flow's doorbell is rung and its service pushes the message;
- same process: the flow runs in a thread here, and the resume is a call to its own service.

The CLI's own start-up (interpreter and imports, ~0.5 s) is not included: that is the
command's cost, not the channel's.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

os.environ.setdefault("HEADWATER_HOME", tempfile.mkdtemp(prefix="hw-resume-bench-"))

from headwater import RunInput, flow, get_run_context, pause_flow_run, resume_flow_run  # noqa: E402

CHILD = textwrap.dedent('''
    import sys, time
    from headwater import RunInput, flow, get_run_context, pause_flow_run

    class Approval(RunInput):
        approved: bool

    @flow
    def waits(tries: int) -> None:
        print("ID", get_run_context().flow_run.id, flush=True)
        for _ in range(tries):
            pause_flow_run(wait_for_input=Approval, timeout=60)
            print("GO", time.time(), flush=True)

    waits(int(sys.argv[1]))
''')


class Approval(RunInput):
    approved: bool


def other_process(tries: int) -> list[float]:
    from headwater.api.storage import Storage
    from headwater.api.settings import get_settings

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tries)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    run_id = child.stdout.readline().split()[1]
    reader = Storage(get_settings().db_path, read_only=True)
    latencies = []
    try:
        for _ in range(tries):
            while reader.read_flow_run(run_id).state_type != "PAUSED":
                time.sleep(0.001)
            t0 = time.time()
            resume_flow_run(run_id, {"approved": True}, by="benchmark")
            went_on = float(child.stdout.readline().split()[1])
            latencies.append((went_on - t0) * 1000)
    finally:
        reader.close()
        child.wait(30)
    return latencies


def same_process(tries: int) -> list[float]:
    went_on: list[float] = []
    gone_on = threading.Semaphore(0)
    runs: list[object] = []

    @flow
    def waits() -> None:
        runs.append(get_run_context().flow_run)
        for _ in range(tries):
            pause_flow_run(wait_for_input=Approval, timeout=60)
            went_on.append(time.perf_counter())
            gone_on.release()

    thread = threading.Thread(target=waits)
    thread.start()
    latencies = []
    for _ in range(tries):
        while not runs or runs[0].state is None or not runs[0].state.is_paused():  # type: ignore[attr-defined]
            time.sleep(0.001)
        t0 = time.perf_counter()
        resume_flow_run(runs[0].id, {"approved": True}, by="benchmark")  # type: ignore[attr-defined]
        gone_on.acquire()
        latencies.append((went_on[-1] - t0) * 1000)
    thread.join()
    return latencies


def _summary(label: str, latencies: list[float]) -> str:
    latencies = sorted(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return f"resume -> flow went on, {label}: p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms over {len(latencies)}"


def main(tries: int = 100) -> None:
    print(_summary("other process (the CLI's path)", other_process(tries)))
    print(_summary("same process", same_process(tries)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
