"""events: the event log's intake and how fast an automation acts (issue #17). Select with
``events``. Each headwater row runs `scripts/event_load.py` in a fresh process against a
standalone server of this workload's own.

* ``events-ingest``: N events emitted by 64 producer threads (`emit_event`, batched), until
  flushed: events stored per second. Baseline: the same N rows inserted into SQLite directly,
  1,000 a transaction (the floor of storing them).
* ``events-to-action``: N events one after another, each firing an automation whose webhook
  posts to a receiver in the child: from `emit_event` to the webhook arriving, p50 / p99.
  Target: under 1 s. Baseline: a `threading.Event` set by one thread and seen by another.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
import uuid

from benchmarks.children import run_json, script, start_server
from benchmarks.engines import require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, Workload
from benchmarks.workloads.cancel import baseline_latency

TOKEN = "bench-events-token"
PRODUCERS = 64
_server: list[str] = []


def _env() -> dict[str, str]:
    if not _server:
        _server.append(start_server(TOKEN, "headwater-bench-events-server-"))
    env = {**os.environ, "HEADWATER_API_URL": _server[0], "HEADWATER_API_TOKEN": TOKEN}
    env.pop("HEADWATER_RECORD", None)
    return env


def run_ingest(runner: str, n: int) -> Trial:
    require_headwater()
    env = _env()
    return lambda: run_json([str(script("event_load.py")), "ingest", str(n), str(PRODUCERS)], env=env)


def baseline_ingest(engine: str, n: int) -> Trial:
    require_baseline(engine, ("sqlite",))

    def trial() -> dict[str, float]:
        with tempfile.TemporaryDirectory() as home:
            conn = sqlite3.connect(os.path.join(home, "events.db"), isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB UNIQUE, event TEXT, "
                         "occurred REAL, resource TEXT, payload TEXT)")  # fmt: skip
            started = time.perf_counter()
            for chunk in range(0, n, 1000):
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO events (id, event, occurred, resource, payload) VALUES (?, ?, ?, ?, ?)",
                                 [(uuid.uuid4().bytes, "bench.ingest", time.time(), '{"headwater.resource.id": "b"}',
                                   f'{{"i": {i}}}') for i in range(chunk, min(n, chunk + 1000))])  # fmt: skip
                conn.execute("COMMIT")
            seconds = time.perf_counter() - started
            conn.close()
        return {"events_per_s": n / seconds, "seconds": seconds}

    return trial


def run_action(runner: str, n: int) -> Trial:
    require_headwater()
    env = _env()
    return lambda: run_json([str(script("event_load.py")), "action", str(n)], env=env)


WORKLOADS = (
    Workload(
        name="events-ingest",
        description="N events from 64 producer threads, batched: events stored per second",
        sizes={"tiny": 640, "quick": 6_400, "full": 64_000},
        run=run_ingest,
        baseline=baseline_ingest,
        figures=(
            Figure("events_per_s", "events/s", lambda raw, n: raw["events_per_s"], higher_is_better=True),
            Figure("seconds", "s", lambda raw, n: raw["seconds"], in_table=False),
        ),
        runners={"64-producers": "sqlite"},
        size_unit="events",
        env={},
        warmup=False,
        repeats={"tiny": 1, "quick": 1, "full": 1},
        order=104,
    ),
    Workload(
        name="events-to-action",
        description="N events each firing an automation's webhook: emit to webhook arrival",
        sizes={"tiny": 3, "quick": 10, "full": 50},
        run=run_action,
        baseline=baseline_latency,
        figures=(
            Figure("p50_ms", "emit→webhook p50 ms", lambda raw, n: raw["p50_ms"]),
            Figure("p99_ms", "p99 ms", lambda raw, n: raw["p99_ms"], target=1000.0),
            Figure("max_ms", "max ms", lambda raw, n: raw["max_ms"], in_table=False),
        ),
        runners={"server": "event"},
        size_unit="events",
        env={},
        warmup=False,
        repeats={"tiny": 1, "quick": 1, "full": 1},
        order=105,
    ),
)
