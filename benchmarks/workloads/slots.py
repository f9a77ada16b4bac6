"""slots: what a concurrency slot costs (issue #11). Select the family with ``slots``.

The state service hands out slots as leases (`headwater.api.SlotClient`); a task tagged with
a limit's name waits for one in its flow's scheduler. Limits live in the service, so every
headwater side here records: into this process's embedded service under the suite's scratch
``HEADWATER_HOME`` (as `cache` does, hence the late ``order``), or into a standalone server.
The raw baselines are `threading.Semaphore`s doing the same thing, measured in the same run.

* ``slots-pairs`` (this module): N acquire/release pairs of one limit of 64 from 64 callers
  at once. ``embedded``: 64 threads of the suite's process sharing its one `SlotClient`,
  against the embedded service. ``server-8-processes``: 8 processes (`scripts/slot_pairs.py`)
  of 8 threads each, each process with its own client, against one standalone server of
  this workload's own; children start, connect and warm up untimed, then are told to go at
  once. The limit is as large as the callers, so nobody waits: the figure is the price of a
  grant and a release (two round trips, two durable SQLite writes), beside 64 threads taking
  and giving back a `threading.Semaphore(64)`.
* ``slots-flow``, ``slots-handoff``, ``slots-ideal``: tagged task runs in flows
  (`slots_flow.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from benchmarks.children import SCRIPTS, script
from benchmarks.engines import environment, require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, Workload
from benchmarks.workloads._slots import TOKEN, embedded_limit, recording_env, standalone_server

CALLERS = 64  # threads taking slots at once, in every row
PROCESSES = 8  # `server-8-processes`: CALLERS / PROCESSES threads in each
PAIRS_LIMIT = "bench-pairs"
CHILD_TIMEOUT_S = 300.0


def _threaded(pair: Callable[[], None], n: int) -> dict[str, float]:
    """CALLERS threads each making n / CALLERS pairs, started together; the wall time."""
    per_thread = max(1, n // CALLERS)
    barrier = threading.Barrier(CALLERS + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            pair()

    threads = [threading.Thread(target=worker) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return {"seconds": time.perf_counter() - started, "pairs": float(per_thread * CALLERS)}


def run_pairs(runner: str, n: int) -> Trial:
    require_headwater()
    if runner == "embedded":
        client = embedded_limit(PAIRS_LIMIT, CALLERS)
        names = [PAIRS_LIMIT]

        def pair() -> None:
            client.acquire(names).release()

        def trial() -> dict[str, float]:
            with environment(recording_env()):
                return _threaded(pair, n)

        return trial
    if runner == "server-8-processes":
        from headwater.api import SlotClient

        url = standalone_server()
        with SlotClient(url, token=TOKEN) as client:
            client.create_limit(PAIRS_LIMIT, CALLERS)
        return lambda: _processes(url, n)
    raise ValueError(f"no slots-pairs runner named {runner!r} (has: embedded, server-8-processes)")


def _processes(url: str, n: int) -> dict[str, float]:
    """PROCESSES children of CALLERS / PROCESSES threads; timed from "go" to the last pair."""
    threads = CALLERS // PROCESSES
    per_thread = max(1, n // CALLERS)
    args = [sys.executable, str(script("slot_pairs.py")), url, TOKEN, PAIRS_LIMIT, str(threads), str(per_thread)]
    children = [
        subprocess.Popen(args, cwd=SCRIPTS, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]  # fmt: skip
    try:
        for child in children:  # untimed: interpreter start, imports, connection, warm-up
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a slot_pairs.py child failed: {_tail(child)}")
        started = time.monotonic()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            out, err = child.communicate(timeout=CHILD_TIMEOUT_S)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if child.returncode != 0 or not lines:
                raise RuntimeError(f"a slot_pairs.py child failed: {err.strip()[-300:]}")
            reports.append(json.loads(lines[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return {"seconds": max(r["end"] for r in reports) - started, "pairs": float(sum(r["pairs"] for r in reports))}


def _tail(child: subprocess.Popen[str]) -> str:
    child.kill()
    _, err = child.communicate()
    return err.strip()[-300:]


def baseline_pairs(engine: str, n: int) -> Trial:
    require_baseline(engine, ("semaphore",))
    semaphore = threading.Semaphore(CALLERS)

    def pair() -> None:
        semaphore.acquire()
        semaphore.release()

    return lambda: _threaded(pair, n)


PAIRS_FIGURES: tuple[Figure, ...] = (
    Figure("pairs_per_s", "pairs/s", lambda raw, n: raw["pairs"] / raw["seconds"], higher_is_better=True),
    Figure("us_per_pair", "µs/pair", lambda raw, n: raw["seconds"] / raw["pairs"] * 1e6),
    Figure("seconds", "s", lambda raw, n: raw["seconds"], in_table=False),
)

WORKLOAD = Workload(
    name="slots-pairs",
    description="N slot acquire/release pairs from 64 callers at once (limit 64: nobody waits)",
    sizes={"tiny": CALLERS, "quick": 640, "full": 1_920},  # whole multiples of 64
    run=run_pairs,
    baseline=baseline_pairs,
    figures=PAIRS_FIGURES,
    runners={"embedded": "semaphore", "server-8-processes": "semaphore"},
    size_unit="pairs",
    env={},  # the trials record into the scratch home themselves
    order=95,
)
