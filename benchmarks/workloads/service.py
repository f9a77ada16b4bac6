"""service: state-service updates per second, batched (recorder) and unbatched (unary calls).

Two workloads, selected together as ``service``:

* ``service-batched``: N records (per task: created, Pending, Running, Completed) enqueued on a
  `Recorder` and flushed. Runners: ``embedded`` (the default in a flow process: the server
  lives in-process and batches go straight to its group committer) and ``grpc`` (a standalone
  ``headwater server start`` process, batches over the bidi Record stream). Baseline: the same
  rows written to raw SQLite with ``executemany``, 1,000 rows per commit.
* ``service-unbatched``: 64 threads, each its own `StateClient`, making N ``set_state`` unary
  calls in total against a standalone server; p50/p99 per call. Baseline: 64 threads each
  inserting one row per transaction into raw SQLite.

Both servers and baselines use SQLite ``synchronous=FULL`` (an ack means durable). Records are
built before the timer starts; trials time themselves and return ``seconds`` (and latencies).
"""

from __future__ import annotations

import atexit
import sqlite3
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.children import start_server
from benchmarks.engines import require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, Workload

THREADS = 64
TOKEN = "bench-token"
BASELINES = ("sqlite-batched", "sqlite-unbatched")

UPDATES_PER_S = Figure("updates_per_s", "updates/s", lambda raw, n: n / raw["seconds"], higher_is_better=True)
US_PER_UPDATE = Figure("us_per_update", "µs/update", lambda raw, n: raw["seconds"] / n * 1e6)
P50_MS = Figure("p50_ms", "p50 ms", lambda raw, n: raw["p50_ms"])
P99_MS = Figure("p99_ms", "p99 ms", lambda raw, n: raw["p99_ms"], target=100.0)
SECONDS = Figure("seconds", "s", lambda raw, n: raw["seconds"], in_table=False)

_server: str | None = None


def _standalone_server() -> str:
    """One `headwater server start` process for the whole suite, stopped at exit."""
    global _server
    if _server is None:
        _server = start_server(TOKEN, "headwater-bench-")
    return _server


def _records(n: int) -> list[Any]:
    from headwater.api import FlowRunRecord, StateRecord, TaskRunRecord

    now = time.time()
    run = FlowRunRecord(uuid.uuid4(), "bench", "bench", {}, created=now)
    out: list[Any] = [run]
    while len(out) < n:
        t = TaskRunRecord(uuid.uuid4(), run.id, "noop-0", "noop", created=now)
        out.append(t)
        for type_ in ("PENDING", "RUNNING", "COMPLETED"):
            out.append(StateRecord(t.id, "task", type_, type_.title(), None, time.time(), uuid.uuid4()))
    return out[:n]


def run_batched(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater.api import StateServer
    from headwater.api.client import Target
    from headwater.api.recorder import Recorder, _GrpcSink, _LocalSink

    if runner == "embedded":
        # What get_recorder() builds without HEADWATER_API_URL, but over a scratch database
        # so the benchmark never writes into the user's HEADWATER_HOME.
        server = StateServer(Path(tempfile.mkdtemp(prefix="headwater-bench-")), port=0)
        server.start()
        atexit.register(server.stop)
        assert server.committer is not None
        recorder = Recorder(_LocalSink(server.committer))
    else:
        recorder = Recorder(_GrpcSink(Target.resolve(_standalone_server(), TOKEN, None)))

    def trial() -> dict[str, float]:
        records = _records(n)
        calls = {"FlowRunRecord": recorder.flow_run_created, "TaskRunRecord": recorder.task_run_created,
                 "StateRecord": recorder.state_changed}  # fmt: skip
        bound = [(calls[type(r).__name__], r) for r in records]
        start = time.perf_counter()
        for call, record in bound:
            call(record)
        enqueued = time.perf_counter()
        recorder.flush(timeout=120)
        end = time.perf_counter()
        return {"seconds": end - start, "enqueue_us": (enqueued - start) / n * 1e6}

    return trial


def run_unbatched(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater.api import StateClient, StateRecord

    url = _standalone_server()
    clients = [StateClient(url, token=TOKEN) for _ in range(THREADS)]

    def trial() -> dict[str, float]:
        now = time.time()
        work = [
            [StateRecord(uuid.uuid4(), "task", "PENDING", "Pending", None, now, uuid.uuid4())
             for _ in range(n // THREADS)]
            for _ in range(THREADS)
        ]  # fmt: skip
        return _threaded(lambda i, rec: clients[i].set_state(rec), work)

    return trial


def _threaded(call: Any, work: list[list[Any]]) -> dict[str, float]:
    """Run `call(thread_index, item)` for every item from one thread per list; time each call."""
    latencies: list[float] = []
    barrier = threading.Barrier(len(work) + 1)

    def worker(i: int) -> None:
        mine = []
        barrier.wait()
        for item in work[i]:
            t0 = time.perf_counter()
            call(i, item)
            mine.append(time.perf_counter() - t0)
        latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(work))]
    for th in threads:
        th.start()
    barrier.wait()
    start = time.perf_counter()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - start
    latencies.sort()
    return {
        "seconds": seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
    }


def _sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS states (run_id TEXT, type TEXT, ts REAL, tid TEXT UNIQUE)")
    return conn


def baseline(engine: str, n: int) -> Trial:
    require_baseline(engine, BASELINES)
    path = Path(tempfile.mkdtemp(prefix="headwater-bench-")) / "raw.db"
    _sqlite(path).close()

    def batched() -> dict[str, float]:
        conn = _sqlite(path)
        rows = [(str(uuid.uuid4()), "PENDING", time.time(), str(uuid.uuid4())) for _ in range(n)]
        start = time.perf_counter()
        for i in range(0, n, 1000):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO states VALUES (?, ?, ?, ?)", rows[i : i + 1000])
            conn.execute("COMMIT")
        return {"seconds": time.perf_counter() - start}

    def unbatched() -> dict[str, float]:
        conns = [_sqlite(path) for _ in range(THREADS)]
        work = [[(str(uuid.uuid4()), "PENDING", time.time(), str(uuid.uuid4())) for _ in range(n // THREADS)]
                for _ in range(THREADS)]  # fmt: skip

        def insert(i: int, row: tuple[Any, ...]) -> None:
            conns[i].execute("BEGIN IMMEDIATE")
            conns[i].execute("INSERT INTO states VALUES (?, ?, ?, ?)", row)
            conns[i].execute("COMMIT")

        return _threaded(insert, work)

    return batched if engine == "sqlite-batched" else unbatched


WORKLOADS = (
    Workload(
        name="service-batched",
        description="N run/state records through the recorder, flushed (group commit)",
        sizes={"tiny": 400, "quick": 40_000, "full": 100_000},
        run=run_batched,
        baseline=baseline,
        figures=(UPDATES_PER_S, US_PER_UPDATE, SECONDS),
        runners={"embedded": "sqlite-batched", "grpc": "sqlite-batched"},
        size_unit="updates",
        env={},
        order=80,
    ),
    Workload(
        name="service-unbatched",
        description="N set_state unary calls from 64 concurrent clients",
        sizes={"tiny": 128, "quick": 3_200, "full": 6_400},
        run=run_unbatched,
        baseline=baseline,
        figures=(UPDATES_PER_S, P50_MS, P99_MS, SECONDS),
        runners={"unbatched": "sqlite-unbatched"},
        size_unit="updates",
        env={},
        order=81,
    ),
)
