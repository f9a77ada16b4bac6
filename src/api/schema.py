"""The SQLite schema of the state service and its migrations.

The schema is versioned in the `schema_version` table and upgraded step by step by
`MIGRATIONS`, one transaction per step; a database written by a newer headwater fails with
`SchemaVersionError` instead of being guessed at. `connect` opens a read-write connection
with the schema created or upgraded; trouble with the file itself (a read-only directory, a
full disk, damage) is raised as a `StorageError` naming the file (see `dbfile.py`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from uuid import UUID

from .dbfile import check_header, prepare, storage_error
from .errors import SchemaVersionError

_V1 = """
CREATE TABLE flow_runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, flow_name TEXT NOT NULL,
    parameters TEXT NOT NULL DEFAULT '{}', parent_flow_run_id TEXT, parent_task_run_id TEXT,
    tags TEXT NOT NULL DEFAULT '[]', created REAL, start_time REAL, end_time REAL,
    state_type TEXT, state_name TEXT, state_timestamp REAL
);
CREATE TABLE task_runs (
    id TEXT PRIMARY KEY, flow_run_id TEXT, name TEXT NOT NULL, task_name TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]', upstream TEXT NOT NULL DEFAULT '{}', created REAL,
    start_time REAL, end_time REAL, state_type TEXT, state_name TEXT, state_timestamp REAL
);
CREATE TABLE states (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, run_kind TEXT NOT NULL,
    type TEXT NOT NULL, name TEXT NOT NULL, message TEXT, timestamp REAL NOT NULL,
    transition_id TEXT NOT NULL UNIQUE
);
CREATE INDEX states_by_run ON states (run_id, timestamp);
CREATE INDEX task_runs_by_flow ON task_runs (flow_run_id);
"""

# v2: liveness. Heartbeats live on the flow run; the sweeper finds stale RUNNING runs by index.
_V2 = """
ALTER TABLE flow_runs ADD COLUMN last_heartbeat REAL;
CREATE INDEX flow_runs_by_state ON flow_runs (state_type);
CREATE INDEX flow_runs_by_parent ON flow_runs (parent_flow_run_id);
"""

# v3: append-friendly indexes. Ids are random, and every commit rewrote each index page a
# random insert touched: with three indexes keyed by 36-char text UUIDs that was most of the
# cost of recording (pwrite of WAL frames), growing with the database. Now ids are 16-byte
# BLOBs, each run has an integer `seq` (its rowid, handed out in creation order), and a
# state is keyed by (run_kind, run_seq, transition_id): one index, appended at its right
# edge, which also makes a re-sent state idempotent (a re-send is the same run and the same
# transition id). Only a run's own id index takes random inserts. `uuid_blob` is a Python
# function `connect` registers, as SQLite before 3.41 has no unhex().
_V3 = """
CREATE TABLE flow_runs_v3 (
    seq INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, name TEXT NOT NULL,
    flow_name TEXT NOT NULL, parameters TEXT NOT NULL DEFAULT '{}', parent_flow_run_id BLOB,
    parent_task_run_id BLOB, tags TEXT NOT NULL DEFAULT '[]', created REAL, start_time REAL,
    end_time REAL, state_type TEXT, state_name TEXT, state_timestamp REAL, last_heartbeat REAL
);
INSERT INTO flow_runs_v3 SELECT rowid, uuid_blob(id), name, flow_name, parameters,
    uuid_blob(parent_flow_run_id), uuid_blob(parent_task_run_id), tags, created, start_time,
    end_time, state_type, state_name, state_timestamp, last_heartbeat FROM flow_runs;
CREATE TABLE task_runs_v3 (
    seq INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, flow_run_id BLOB, name TEXT NOT NULL,
    task_name TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]', upstream TEXT NOT NULL DEFAULT '{}',
    created REAL, start_time REAL, end_time REAL, state_type TEXT, state_name TEXT,
    state_timestamp REAL
);
INSERT INTO task_runs_v3 SELECT rowid, uuid_blob(id), uuid_blob(flow_run_id), name, task_name,
    tags, upstream, created, start_time, end_time, state_type, state_name, state_timestamp
    FROM task_runs;
CREATE TABLE states_v3 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_kind TEXT NOT NULL, run_seq INTEGER NOT NULL,
    run_id BLOB NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL, message TEXT,
    timestamp REAL NOT NULL, transition_id BLOB NOT NULL
);
INSERT INTO states_v3 SELECT s.seq, s.run_kind, coalesce(CASE s.run_kind
        WHEN 'flow' THEN (SELECT f.rowid FROM flow_runs f WHERE f.id = s.run_id)
        ELSE (SELECT t.rowid FROM task_runs t WHERE t.id = s.run_id) END, -1),
    uuid_blob(s.run_id), s.type, s.name, s.message, s.timestamp, uuid_blob(s.transition_id)
    FROM states s ORDER BY s.seq;
DROP TABLE states;
DROP TABLE task_runs;
DROP TABLE flow_runs;
ALTER TABLE flow_runs_v3 RENAME TO flow_runs;
ALTER TABLE task_runs_v3 RENAME TO task_runs;
ALTER TABLE states_v3 RENAME TO states;
CREATE UNIQUE INDEX states_by_run ON states (run_kind, run_seq, transition_id);
CREATE INDEX task_runs_by_flow ON task_runs (flow_run_id);
CREATE INDEX flow_runs_by_state ON flow_runs (state_type);
CREATE INDEX flow_runs_by_parent ON flow_runs (parent_flow_run_id);
"""

# v4: where each run ran, the host and pid of the process that announced it last (a task run
# re-announced by the worker that took it over moves there). Added columns are NULL in old
# rows; SQLite adds them without rewriting the tables.
_V4 = """
ALTER TABLE flow_runs ADD COLUMN host TEXT;
ALTER TABLE flow_runs ADD COLUMN pid INTEGER;
ALTER TABLE task_runs ADD COLUMN host TEXT;
ALTER TABLE task_runs ADD COLUMN pid INTEGER;
"""

# v5: concurrency limits and the leases on them (`slot_store.py`), so both survive a restart.
# `concurrency_changes.generation` counts changes made to limits (and leases freed by a reset)
# by whoever writes them: a running server compares it with what it last read, and so picks
# up a limit the CLI created or reset in the database directly.
_V5 = """
CREATE TABLE concurrency_limits (
    name TEXT PRIMARY KEY, slot_limit INTEGER NOT NULL,
    slot_decay_per_second REAL NOT NULL DEFAULT 0, created REAL NOT NULL
);
CREATE TABLE concurrency_leases (
    id TEXT PRIMARY KEY, request_id TEXT NOT NULL, names TEXT NOT NULL, occupy INTEGER NOT NULL,
    label TEXT NOT NULL, task_run_id BLOB, flow_run_id BLOB, host TEXT, pid INTEGER,
    acquired_at REAL NOT NULL, expires_at REAL NOT NULL, lease_seconds REAL NOT NULL
);
CREATE TABLE concurrency_changes (generation INTEGER NOT NULL);
INSERT INTO concurrency_changes (generation) VALUES (0);
"""

# v6: run logs (`log_store.py`). `seq` is the commit order, which readers page and follow by;
# lines are read per flow run from a seq on, hence the index on (flow_run_id, seq).
_V6 = """
CREATE TABLE logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, flow_run_id BLOB, task_run_id BLOB, level INT,
    timestamp REAL, logger TEXT, message TEXT, exception TEXT
);
CREATE INDEX logs_by_flow_run ON logs (flow_run_id, seq);
"""

# v7: the control channel (`control_store.py`). A control message is a durable row the service
# pushes to the process that owns its flow run; `seq` is the order clients resume after.
# `deadline` makes the row a timer too (a cancel's): the sweeper finds the unsettled ones due
# by the partial index, which holds only rows still waiting. `acked` is when the owning
# process said it acted; `settled` when the row needs nothing more (the run ended).
_V7 = """
CREATE TABLE control_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, flow_run_id BLOB NOT NULL, kind TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL, deadline REAL, acked REAL,
    settled REAL
);
CREATE INDEX control_messages_by_run ON control_messages (flow_run_id, seq);
CREATE INDEX control_messages_due ON control_messages (deadline) WHERE settled IS NULL;
"""

# v8: pauses (`pause_store.py`). One row per pause of a flow run, unique by the run's own
# `key` (a re-executed pause with a key already resumed does not pause again). The row holds
# the JSON schema the resume's input is validated against, the deadline (a durable timer the
# sweeper finds by the partial index while the pause is open) and how it ended: who resumed
# it, when, with what input, or that it timed out.
_V8 = """
CREATE TABLE pauses (
    id INTEGER PRIMARY KEY AUTOINCREMENT, flow_run_id BLOB NOT NULL, key TEXT NOT NULL,
    input_schema TEXT, created REAL NOT NULL, deadline REAL NOT NULL, resolved REAL,
    outcome TEXT, resolved_by TEXT, run_input TEXT
);
CREATE UNIQUE INDEX pauses_by_run_key ON pauses (flow_run_id, key);
CREATE INDEX pauses_due ON pauses (deadline) WHERE resolved IS NULL;
"""

# v9: deployments, work pools and workers (`deploy_store.py`). A deployment's run is a flow
# run row the service creates SCHEDULED, carrying its deployment, pool, due time and the
# caller's idempotency key, unique per deployment by a partial index (so a retried
# `run_deployment` never makes a second run). Queued runs are found by the partial index on
# their due time. A claim is a worker's lease on one run: `token` fences a worker whose
# lease expired (its late "started" changes nothing); counts against pool, worker and
# deployment limits are counts of live claims, so nothing can drift.
_V9 = """
CREATE TABLE work_pools (
    name TEXT PRIMARY KEY, concurrency_limit INTEGER, paused INTEGER NOT NULL DEFAULT 0,
    description TEXT, created REAL NOT NULL
);
CREATE TABLE deployments (
    id BLOB PRIMARY KEY, name TEXT NOT NULL UNIQUE, flow_name TEXT NOT NULL,
    entrypoint TEXT NOT NULL, source TEXT NOT NULL, parameters TEXT NOT NULL DEFAULT '{}',
    parameter_schema TEXT NOT NULL DEFAULT '{}', tags TEXT NOT NULL DEFAULT '[]', work_pool TEXT,
    description TEXT, version TEXT, paused INTEGER NOT NULL DEFAULT 0, concurrency_limit INTEGER,
    collision_strategy TEXT NOT NULL DEFAULT 'enqueue', created REAL NOT NULL, updated REAL NOT NULL
);
ALTER TABLE flow_runs ADD COLUMN deployment_id BLOB;
ALTER TABLE flow_runs ADD COLUMN work_pool TEXT;
ALTER TABLE flow_runs ADD COLUMN idempotency_key TEXT;
ALTER TABLE flow_runs ADD COLUMN scheduled_time REAL;
CREATE UNIQUE INDEX flow_runs_by_idempotency_key ON flow_runs (deployment_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX flow_runs_queued ON flow_runs (scheduled_time)
    WHERE deployment_id IS NOT NULL AND state_type = 'SCHEDULED';
CREATE TABLE workers (
    name TEXT PRIMARY KEY, pool TEXT, deployments TEXT NOT NULL DEFAULT '[]', host TEXT,
    pid INTEGER, slot_limit INTEGER, lease_seconds REAL NOT NULL, started REAL NOT NULL,
    last_heartbeat REAL NOT NULL, stopped REAL
);
CREATE TABLE run_claims (
    flow_run_id BLOB PRIMARY KEY, deployment_id BLOB NOT NULL, pool TEXT, worker TEXT NOT NULL,
    token INTEGER NOT NULL, claimed REAL NOT NULL, lease_expires REAL NOT NULL, started REAL
);
CREATE INDEX run_claims_by_worker ON run_claims (worker);
CREATE TABLE claim_tokens (last INTEGER NOT NULL);
INSERT INTO claim_tokens (last) VALUES (0);
"""

# v10: schedules (`schedule_store.py`). A schedule belongs to a deployment and is named by its
# `content_key` (a hash of when and with what it runs), unique among the deployment's live
# schedules; a redeploy that changes it supersedes the row (kept, `superseded` set) instead of
# deleting it. `scheduled_until` is how far its ticks have been made into runs. A run made by
# a schedule carries `schedule_id`, and its idempotency key is derived from the schedule's
# content and the tick's time, so the unique index of v9 admits one run per tick, whoever
# creates it (two scheduler loops, a restart, a redeploy).
_V10 = """
CREATE TABLE deployment_schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT, deployment_id BLOB NOT NULL, content_key TEXT NOT NULL,
    slug TEXT, spec TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1, created REAL NOT NULL,
    superseded REAL, scheduled_until REAL
);
CREATE UNIQUE INDEX deployment_schedules_live ON deployment_schedules (deployment_id, content_key)
    WHERE superseded IS NULL;
ALTER TABLE flow_runs ADD COLUMN schedule_id INTEGER;
CREATE INDEX flow_runs_by_schedule ON flow_runs (schedule_id, scheduled_time) WHERE schedule_id IS NOT NULL;
"""

# v11: blocks and variables (`block_store.py`). A block document is unique by (type, name);
# its `data` is opaque JSON to the service (secret fields arrive encrypted by the client, so
# the database never holds them in plain text). A block type keeps the JSON schema and
# version its class had when last saved, for `headwater block check`.
_V11 = """
CREATE TABLE block_types (
    slug TEXT PRIMARY KEY, schema TEXT NOT NULL, version TEXT NOT NULL, updated REAL NOT NULL
);
CREATE TABLE blocks (
    id BLOB PRIMARY KEY, type_slug TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    type_version TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE UNIQUE INDEX blocks_by_type_name ON blocks (type_slug, name);
CREATE TABLE variables (
    name TEXT PRIMARY KEY, value TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL, updated REAL NOT NULL
);
"""

# v12: emitted events (`event_store.py`); runs' state events are their `states` rows, read as
# events, so this table holds only what code and tools emit. `seq` is the commit order
# followers resume from; `id` makes a re-sent event a no-op.
_V12 = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL UNIQUE, event TEXT NOT NULL,
    occurred REAL NOT NULL, received REAL NOT NULL, resource_id TEXT NOT NULL,
    resource TEXT NOT NULL, related TEXT NOT NULL DEFAULT '[]', payload TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_resource ON events (resource_id, seq);
"""

# v13: automations (`automation_store.py`): the trigger's state and the event cursor it was
# evaluated to live on the row, written with the firings in one transaction; a firing is
# unique by its key (derived from the automation, bucket and window) and is its actions'
# outbox (`next_action`), found by the partial index while it has actions left.
_V13 = """
CREATE TABLE automations (
    id BLOB PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT, trigger TEXT NOT NULL,
    actions TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, created REAL NOT NULL,
    updated REAL NOT NULL, state TEXT NOT NULL DEFAULT '{}', cursor TEXT
);
CREATE TABLE automation_firings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, automation_id BLOB NOT NULL, key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL, body TEXT NOT NULL, created REAL NOT NULL, next_action INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL, finished REAL, error TEXT
);
CREATE INDEX automation_firings_open ON automation_firings (next_attempt) WHERE finished IS NULL;
CREATE INDEX automation_firings_by_automation ON automation_firings (automation_id, seq);
"""

# v14: which attempt placed a task run (`TaskRunRecord.moved`): a worker's re-announcement
# that arrives after a later attempt's (each worker records over its own connection) no
# longer moves the run back to where it ran before.
_V14 = """
ALTER TABLE task_runs ADD COLUMN placed_attempt INTEGER NOT NULL DEFAULT 0;
"""

#: MIGRATIONS[i] upgrades a database from version i to version i + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12, _V13, _V14)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path, *, synchronous: str = "FULL", check: bool = True) -> sqlite3.Connection:
    """A read-write connection with the schema created or upgraded to `SCHEMA_VERSION`; a new
    directory and database are private to their owner (0700, 0600).

    `check=False` for a second connection in a process that already has one: checking the
    file's header opens and closes it outside SQLite, and closing any descriptor of a file
    drops every POSIX lock the process holds on it, the first connection's included; another
    process could then write under it and corrupt the database."""
    pragma = _pragma_value(synchronous)
    try:
        if check:
            prepare(path)
            check_header(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    except (OSError, sqlite3.Error) as exc:
        raise storage_error(path, exc) from None
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={pragma}")
        conn.create_function("uuid_blob", 1, _uuid_blob, deterministic=True)
        migrate(conn)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, (OSError, sqlite3.Error)):
            raise storage_error(path, exc) from None
        raise
    return conn


def _uuid_blob(text: str | None) -> bytes | None:
    return None if text is None else UUID(text).bytes


def _pragma_value(value: str) -> str:
    if value.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"HEADWATER_DB_SYNCHRONOUS must be OFF/NORMAL/FULL/EXTRA, not {value!r}")
    return value.upper()


def schema_version(conn: sqlite3.Connection) -> int:
    """The stored schema version; 0 for an empty database."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return 0
    found = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(found[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Upgrade to `SCHEMA_VERSION`, one migration per transaction; returns the old version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    old = schema_version(conn)
    if old > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database schema version {old} is newer than this headwater understands "
            f"(version {SCHEMA_VERSION}); upgrade headwater or point HEADWATER_HOME elsewhere"
        )
    for version in range(old, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite itself rolls back on a full disk
                conn.execute("ROLLBACK")
            raise
    return old
