"""Cancel latency and the control stream's idle cost (issue #14), run by hand:

    python -m benchmarks.scripts.cancel_latency [TRIES]

Latency: a flow (embedded state service, a scratch HEADWATER_HOME) runs an async task that
waits; another thread calls `cancel_flow_run`; the figure is the time from that call to the
flow acting on it (its `on_cancellation` hook reading the clock), p50 / p99 over TRIES.
Idle cost: CPU seconds this process spends over 5 s while one flow sits idle with its control
stream open (threads blocked, keepalive only), beside the same 5 s with no flow.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time

os.environ.setdefault("HEADWATER_HOME", tempfile.mkdtemp(prefix="hw-cancel-bench-"))

from headwater import cancel_flow_run, flow, get_run_context, task  # noqa: E402


def main(tries: int = 100) -> None:
    acted: list[float] = []
    started = threading.Event()
    run_id: list[object] = []

    @task
    async def wait() -> None:
        await asyncio.sleep(60)

    def hook(*_: object) -> None:
        acted.append(time.perf_counter())

    @flow(on_cancellation=[hook])
    def victim() -> None:
        run_id.append(get_run_context().flow_run.id)
        started.set()
        wait.submit().result()

    latencies = []
    for _ in range(tries):
        started.clear()
        run_id.clear()
        t = threading.Thread(target=lambda: _quietly(victim))
        t.start()
        started.wait()
        time.sleep(0.01)
        t0 = time.perf_counter()
        cancel_flow_run(run_id[0])  # type: ignore[arg-type]
        t.join()
        latencies.append((acted[-1] - t0) * 1000)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"cancel -> flow acted: p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms over {tries}")
    print(f"idle CPU, no flow: {_cpu_over(5.0):.3f} s per 5 s")
    started.clear()

    @flow
    def idle() -> None:
        started.set()
        time.sleep(5.5)

    t = threading.Thread(target=idle)
    t.start()
    started.wait()
    print(f"idle CPU, one flow with its control stream open: {_cpu_over(5.0):.3f} s per 5 s")
    t.join()


def _quietly(fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except Exception:
        pass


def _cpu_over(seconds: float) -> float:
    before = time.process_time()
    time.sleep(seconds)
    return time.process_time() - before


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
