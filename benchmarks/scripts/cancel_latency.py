"""Cancel latency and the control stream's idle cost (issue #14); the child of
`workloads/cancel.py`, also run by hand:

    python cancel_latency.py in-process|doorbell|server TRIES
    python cancel_latency.py idle SECONDS

Latency: a flow runs an async task that waits a minute; someone calls `cancel_flow_run`; the
figure is the wall time from that call to the flow acting on it (its `on_cancellation` hook
reading the clock), p50 / p99 over TRIES. Who calls:
- `in-process`: another thread of the flow's process (its embedded service, in-process);
- `doorbell`: another process (`cancel_issuer.py`) on the same HEADWATER_HOME, no server:
  the cancel goes straight into the database and rings the flow process's doorbell;
- `server`: another process, both recording into the standalone server at HEADWATER_API_URL.

Idle: CPU (user + system, every thread of the process: recorder, heartbeat, embedded service)
over SECONDS with the control stream open and no flow running, then the same process over
SECONDS after closing the stream; the difference is the stream's share.
Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from headwater import flow, get_run_context, task
from headwater.runtime import cancel_flow_run


@task
async def wait_a_minute() -> None:
    await asyncio.sleep(60)


def latencies(mode: str, tries: int) -> list[float]:
    acted: list[float] = []
    started = threading.Event()
    run_ids: list[str] = []

    @flow(on_cancellation=[lambda *_: acted.append(time.time())])
    def victim() -> None:
        run_ids.append(str(get_run_context().flow_run.id))
        started.set()
        wait_a_minute.submit().result()

    issuer = None if mode == "in-process" else _issuer()
    found = []
    try:
        for attempt in range(tries + 1):  # the first warms up: imports, connections
            started.clear()
            run_ids.clear()
            body = threading.Thread(target=_quietly, args=(victim,))
            body.start()
            started.wait()
            time.sleep(0.01)  # its task is running
            asked = _cancel(run_ids[0], issuer)
            body.join()
            if attempt:
                found.append((acted[-1] - asked) * 1e3)
    finally:
        if issuer is not None:
            issuer.kill()
    return sorted(found)


def _issuer() -> subprocess.Popen[str]:
    script = Path(__file__).with_name("cancel_issuer.py")
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _cancel(run_id: str, issuer: subprocess.Popen[str] | None) -> float:
    """Ask for the cancel; when it was asked (wall clock, comparable across processes)."""
    if issuer is None:
        asked = time.time()
        cancel_flow_run(run_id)
        return asked
    assert issuer.stdin is not None and issuer.stdout is not None
    issuer.stdin.write(run_id + "\n")
    issuer.stdin.flush()
    return float(issuer.stdout.readline())


def idle(seconds: float) -> dict[str, float]:
    from headwater.api.control_client import close_control_clients

    @flow
    def small() -> None:
        wait_short.submit().result()

    small()  # recorder, heartbeat, embedded service and the control stream are up now
    time.sleep(0.5)
    with_stream = _cpu_over(seconds)
    close_control_clients()
    time.sleep(0.5)
    without = _cpu_over(seconds)
    return {
        "with_stream_ms_per_s": with_stream * 1e3 / seconds,
        "without_stream_ms_per_s": without * 1e3 / seconds,
        "stream_ms_per_s": (with_stream - without) * 1e3 / seconds,
    }


@task
def wait_short() -> None:
    time.sleep(0.01)


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception:  # CancelledRun: what the cancel is for
        pass


def _cpu_over(seconds: float) -> float:
    def used() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    before = used()
    time.sleep(seconds)
    return used() - before


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def main(mode: str, amount: float) -> None:
    if mode == "idle":
        print(json.dumps(idle(amount)))
        return
    found = latencies(mode, int(amount))
    print(json.dumps({"p50_ms": _percentile(found, 0.5), "p99_ms": _percentile(found, 0.99),
                      "max_ms": found[-1], "tries": len(found)}))


if __name__ == "__main__":
    os.environ.setdefault("HEADWATER_HOME", __import__("tempfile").mkdtemp(prefix="hw-cancel-bench-"))
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 100)
