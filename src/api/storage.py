"""SQLite storage of flow runs, task runs and their state history: reads and writes.

One database file (WAL mode) under `HEADWATER_HOME`; its tables and their migrations live in
`schema.py`.

Writes happen only on the committer thread (`committer.py`) through `apply_batches`, which
applies many batches in one transaction (group commit), first as one write, and batch by batch
under a SAVEPOINT each when that fails, so one bad batch does not undo its neighbours; a batch
that still fails is applied without its unstorable records (text that is not valid Unicode,
say), and its result names them, so one bad record does not undo its batch. Rows go
in with a few multi-row INSERTs (see `Storage._insert_rows` for why not `executemany`), and
the current state of recently written runs is cached (`_RunCache`) instead of re-read. Ids are
16-byte BLOBs; states are keyed by their run's integer seq (schema v3). Reads use one
connection per thread.

Ordering: states are applied in the order they appear in a batch (the order the client
produced them), and history is shown ordered by (timestamp, commit sequence). A state that
arrives late from another process (older than the run's current state and not a legal move
from it) is kept in the history without moving the run's current state.
"""


from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import chain, islice
from pathlib import Path
from typing import Any
from uuid import UUID

from . import rules
from .dbfile import check_header, storage_error
from .errors import AmbiguousRunId, RunNotFound, SchemaVersionError
from .log_records import LogPage
from .log_store import LOG_INSERT, log_rows, query_for, read_logs
from .records import (
    Batch,
    BatchResult,
    FlowRunInfo,
    FlowRunRecord,
    Rejection,
    RunFilter,
    StateInfo,
    StateRecord,
    TaskRunInfo,
    TaskRunRecord,
    as_uuid,
)
from .schema import MIGRATIONS as MIGRATIONS
from .schema import SCHEMA_VERSION as SCHEMA_VERSION
from .schema import connect, schema_version

log = logging.getLogger(__name__)

# Writes name every column, so they are the same in a new database and a migrated one.
_FLOW_COLUMNS_IN = (
    "seq, id, name, flow_name, parameters, parent_flow_run_id, parent_task_run_id, tags, "
    "created, host, pid, state_type, state_name, state_timestamp, start_time, end_time, "
    "last_heartbeat"
)
_TASK_COLUMNS_IN = (
    "seq, id, flow_run_id, name, task_name, tags, upstream, created, host, pid, placed_attempt, "
    "state_type, state_name, state_timestamp, start_time, end_time"
)
_FLOW_INSERT = f"INSERT INTO flow_runs ({_FLOW_COLUMNS_IN}) "
_TASK_INSERT = f"INSERT INTO task_runs ({_TASK_COLUMNS_IN}) "
# A stored run re-announced (a re-send): update its metadata, never its state or seq. Its
# placement (host, pid) is kept unless the record says the run moved (`TaskRunRecord.moved`),
# and then only for an attempt no earlier than the one that placed it.
_KEEP_PLACEMENT = "host = coalesce({table}.host, excluded.host), pid = coalesce({table}.pid, excluded.pid)"
_FLOW_UPSERT = f"""
INSERT INTO flow_runs ({_FLOW_COLUMNS_IN}) VALUES ({", ".join("?" * 17)})
ON CONFLICT (id) DO UPDATE SET name = excluded.name, flow_name = excluded.flow_name,
    parameters = excluded.parameters, parent_flow_run_id = excluded.parent_flow_run_id,
    parent_task_run_id = excluded.parent_task_run_id, tags = excluded.tags,
    created = excluded.created, {_KEEP_PLACEMENT.format(table="flow_runs")}
"""
_TASK_UPSERT = f"""
INSERT INTO task_runs ({_TASK_COLUMNS_IN}) VALUES ({", ".join("?" * 16)})
ON CONFLICT (id) DO UPDATE SET flow_run_id = excluded.flow_run_id, name = excluded.name,
    task_name = excluded.task_name, tags = excluded.tags, upstream = excluded.upstream,
    created = excluded.created, {{placement}}
"""
_TASK_UPSERTS = (
    _TASK_UPSERT.format(placement=_KEEP_PLACEMENT.format(table="task_runs")),
    _TASK_UPSERT.format(placement=(  # moved
        "host = CASE WHEN excluded.placed_attempt >= task_runs.placed_attempt THEN excluded.host ELSE task_runs.host END, "
        "pid = CASE WHEN excluded.placed_attempt >= task_runs.placed_attempt THEN excluded.pid ELSE task_runs.pid END, "
        "placed_attempt = max(task_runs.placed_attempt, excluded.placed_attempt)"
    )),
)
_HISTORY_INSERT = (
    "INSERT INTO states (run_seq, run_kind, run_id, type, name, message, timestamp, "
    "transition_id) "
)
# An absent message is bound as 0 (see `Storage._insert_rows`); messages are never ints.
_HISTORY_SELECT = "column1, column2, column3, column4, column5, NULLIF(column6, 0), column7, column8"
_TABLE = {"flow": "flow_runs", "task": "task_runs"}
# One statement (one GIL round trip) at the start of each write transaction.
_BEGIN = (
    "SELECT (SELECT data_version FROM pragma_data_version), "
    "(SELECT max(seq) FROM flow_runs), (SELECT max(seq) FROM task_runs)"
)
_STATE_COLUMNS = "state_type, state_name, state_timestamp, start_time, end_time"
# A state change of a flow run is also proof of life: the sweeper counts from it.
_ALIVE = {"flow": ", last_heartbeat", "task": ""}
# Moves a stored run (its own seq conflicts) or makes a placeholder row for a state that came
# before its run's record (another process created the run); the create-run upsert fills the
# placeholder in later.
_MOVE = {
    kind: f"INSERT INTO {_TABLE[kind]} (seq, id, name, {kind}_name, {_STATE_COLUMNS}{alive}) "
    for kind, alive in _ALIVE.items()
}
_MOVE_TAIL = {
    kind: " ON CONFLICT (seq) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (_STATE_COLUMNS + alive).split(", "))
    for kind, alive in _ALIVE.items()
}
_FLOW_COLUMNS = (
    "f.id, f.name, f.flow_name, f.parameters, f.parent_flow_run_id, f.parent_task_run_id, "
    "f.tags, f.created, f.start_time, f.end_time, f.state_type, f.state_name, "
    "f.last_heartbeat, (SELECT count(*) FROM task_runs t WHERE t.flow_run_id = f.id), "
    "f.host, f.pid"
)
_TASK_COLUMNS = (
    "id, flow_run_id, name, task_name, tags, upstream, created, start_time, end_time, "
    "state_type, state_name, host, pid"
)
_CHUNK = 900  # stay under SQLite's bound-parameter limit on old builds
_MAX_ROWS = 4096  # rows per multi-row INSERT: few statements per batch (see _insert_rows)
_CACHE_RUNS = 50_000  # current states of recently written runs kept by the writer
_PREFIX = re.compile(r"^[0-9a-f]{1,32}$")
_MIN_SUFFIX = 6  # hex digits: a task run's id is also found by its last digits, as the CLI shows it
# What a write can raise for a bad value as well as for SQLite itself: binding a str with a
# lone surrogate raises UnicodeEncodeError (a ValueError), an odd type TypeError or
# OverflowError. Any of them fails one batch (or one record), never the whole group.
_WRITE_ERRORS = (sqlite3.Error, ValueError, TypeError, OverflowError)


@dataclass(slots=True)
class _RunState:
    """The mutable view of one run's current state while a batch is applied."""

    exists: bool
    seq: int
    type: str | None = None
    name: str | None = None
    timestamp: float | None = None
    start: float | None = None
    end: float | None = None
    dirty: bool = False
    inserted: bool = False


_Runs = dict[tuple[str, bytes], _RunState]


class _RunCache:
    """The current states of runs this storage wrote lately, so a state arriving in a later
    batch needs no SELECT. Valid only while no other connection writes the database (another
    process's embedded server on the same file): `check` asks SQLite's `data_version`, which
    changes exactly when another connection commits, and forgets everything if it did."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, bytes], tuple[Any, ...]] = {}
        self._version: int | None = None
        self.get = self._states.get

    def check(self, version: int) -> None:
        """Call with `data_version` read inside the write transaction, where no other
        connection can commit."""
        if version != self._version:
            self._states.clear()
            self._version = version

    def remember(self, runs: _Runs) -> None:
        """Keep the states of one applied batch's runs (those that now have a row)."""
        states = self._states
        for key, r in runs.items():
            if r.exists or r.inserted or r.dirty:
                states[key] = (r.seq, r.type, r.name, r.timestamp, r.start, r.end)
        if len(states) > _CACHE_RUNS:  # drop the oldest half: dicts keep insertion order
            for key in list(islice(states, len(states) // 2)):
                del states[key]

    def forget(self) -> None:
        self._states.clear()
        self._version = None


class Storage:
    """The database: group-committed writes (one thread) and per-thread reads."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", read_only: bool = False) -> None:
        self.path = path
        self.synchronous = synchronous
        self.read_only = read_only
        self._local = threading.local()
        self._writer: sqlite3.Connection | None = None
        self._cache = _RunCache()
        self._next_seq = {"flow": 0, "task": 0}
        self._max_vars = 999
        if read_only:
            self._check_readable()
        else:
            self._writer = connect(path, synchronous=synchronous)
            self._max_vars = self._writer.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- writes (committer thread only) ---------------------------------------------------

    def apply_batches(self, batches: Sequence[Batch], now: float) -> list[BatchResult | Exception]:
        """Apply every batch in one transaction; a failing batch is rolled back alone."""
        assert self._writer is not None, "storage opened read-only"
        cur = self._writer.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            version, *seqs = cur.execute(_BEGIN).fetchone()
            self._cache.check(version)
            self._next_seq = dict(zip(_TABLE, (seq or 0 for seq in seqs)))
            results = self._apply_group(cur, batches, now) if len(batches) > 1 else None
            if results is None:
                results = [self._apply_alone(cur, batch, now) for batch in batches]
            cur.execute("COMMIT")
        except BaseException as exc:
            self._cache.forget()  # it may hold states this rollback undid
            if self._writer.in_transaction:  # SQLite rolls back by itself on a full disk
                cur.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise storage_error(self.path, exc) from exc
            raise
        return results

    def _apply_group(
        self, cur: sqlite3.Cursor, batches: Sequence[Batch], now: float
    ) -> list[BatchResult | Exception] | None:
        """All batches as one: a batch costs a few statements, and each statement's GIL round
        trip waits while the runtime is busy. None when anything fails: then one by one."""
        cur.execute("SAVEPOINT batch")
        try:
            results, runs = self._apply(cur, batches, now, careful=False)
        except _WRITE_ERRORS:
            if not cur.connection.in_transaction:
                raise  # the whole transaction is gone (a full disk): not this group's fault
            cur.execute("ROLLBACK TO batch")
            cur.execute("RELEASE batch")
            return None
        cur.execute("RELEASE batch")
        self._cache.remember(runs)
        return list(results)

    def _apply_alone(self, cur: sqlite3.Cursor, batch: Batch, now: float) -> BatchResult | Exception:
        cur.execute("SAVEPOINT batch")
        try:
            # Optimistic: a first send rarely repeats a committed transition or re-creates a
            # stored run, so skip both lookups; the states' UNIQUE index and the run id's
            # catch a repeat and the batch is redone with the lookups.
            try:
                [result], runs = self._apply(cur, [batch], now, careful=False)
            except sqlite3.IntegrityError:
                cur.execute("ROLLBACK TO batch")
                [result], runs = self._apply(cur, [batch], now, careful=True)
            cur.execute("RELEASE batch")
            self._cache.remember(runs)
            return result
        except _WRITE_ERRORS as exc:
            if not cur.connection.in_transaction:
                raise  # the whole transaction is gone (a full disk): not this batch's fault
            cur.execute("ROLLBACK TO batch")
            cur.execute("RELEASE batch")
            return self._apply_storable(cur, batch, now, exc)

    def _apply_storable(
        self, cur: sqlite3.Cursor, batch: Batch, now: float, exc: Exception
    ) -> BatchResult | Exception:
        """After `batch` failed with `exc`: apply it without the records that cannot be stored
        (`Batch.without_unstorable`), which its result names; `exc` if there are none."""
        rest, unstored = batch.without_unstorable()
        if not unstored and len(rest.logs) == len(batch.logs):
            return exc
        log.error("%d record(s) cannot be stored; the rest of their batch is: %s",
                  len(unstored), unstored[0].reason)
        result = self._apply_alone(cur, rest, now)
        if isinstance(result, Exception):
            return result
        return BatchResult(result.applied, result.rejections, unstored)

    def _apply(
        self, cur: sqlite3.Cursor, batches: Sequence[Batch], now: float, *, careful: bool
    ) -> tuple[list[BatchResult], _Runs]:
        """Apply `batches` in order as one write; a result per batch."""
        states = [s for b in batches for s in b.states]
        keys: list[tuple[str, bytes]] = [(s.run_kind, _blob(s.run_id)) for s in states]
        created: dict[tuple[str, bytes], FlowRunRecord | TaskRunRecord] = {
            ("flow", _blob(r.id)): r for b in batches for r in b.flows
        }
        for b in batches:
            for r in b.tasks:  # a first announcement never undoes a move, nor an earlier move a later one
                key = ("task", _blob(r.id))
                if key not in created or (r.moved and r.moved >= created[key].moved):  # type: ignore[union-attr]
                    created[key] = r
        runs = self._current_states(cur, set(keys) | created.keys(), created, careful)
        known = self._known_transitions(cur, runs) if careful else set()
        seen: dict[bytes, tuple[str, bytes]] = {}
        history: list[tuple[Any, ...]] = []
        applied, refused, start = [], [], 0
        for b in batches:
            before, end = len(history), start + len(b.states)
            refused.append(_decide_all(b.states, keys[start:end], runs, seen, known, careful, history))
            applied.append(len(history) - before)
            start = end
        if any(refused) and not careful:
            # A refused change may be a repeat of one already committed: that is a no-op.
            known = self._known_transitions(cur, runs)
            refused = [[(pair, r) for pair, r in each if pair not in known] for each in refused]
        self._write_runs(cur, created, runs, now)
        self._write_states(cur, runs, history, now)
        logs = [r for b in batches for r in b.logs]
        if logs:  # see log_store.py
            self._insert_rows(cur, LOG_INSERT, "", log_rows(logs))
        beats = [(now, _blob(run_id)) for b in batches for run_id in b.heartbeats]
        if beats:
            cur.executemany("UPDATE flow_runs SET last_heartbeat = ? WHERE id = ?", beats)
        results = [BatchResult(n, tuple(r for _, r in each)) for n, each in zip(applied, refused)]
        return results, runs

    def _current_states(
        self, cur: sqlite3.Cursor, wanted: set[tuple[str, bytes]], created: dict[Any, Any],
        careful: bool,
    ) -> _Runs:
        """The current state of every run in `wanted`: from the cache of runs this storage
        wrote, else from the table, else new (with the next seq). A run created in this batch
        is not looked up unless `careful`: the INSERT's UNIQUE id checks it is new."""
        runs: _Runs = {}
        missing: dict[str, list[bytes]] = {"flow": [], "task": []}
        cached = self._cache.get
        for key in wanted:
            values = cached(key)
            if values is not None:
                runs[key] = _RunState(True, *values)
            elif careful or key not in created:
                missing[key[0]].append(key[1])
        for kind, ids in missing.items():
            for chunk in _chunks(ids):
                sql = (
                    f"SELECT id, seq, state_type, state_name, state_timestamp, start_time, "
                    f"end_time FROM {_TABLE[kind]} WHERE id IN ({','.join('?' * len(chunk))})"
                )
                for row in cur.execute(sql, chunk).fetchall():
                    runs[(kind, row[0])] = _RunState(True, *row[1:])
        for key in wanted:
            if key not in runs:
                self._next_seq[key[0]] += 1
                runs[key] = _RunState(False, self._next_seq[key[0]])
        return runs

    def _known_transitions(self, cur: sqlite3.Cursor, runs: _Runs) -> set[tuple[Any, bytes]]:
        """The (run key, transition id) pairs already stored for the stored runs of `runs`."""
        known: set[tuple[Any, bytes]] = set()
        for kind in _TABLE:
            by_seq = {r.seq: key for key, r in runs.items() if key[0] == kind and r.exists}
            for chunk in _chunks(list(by_seq)):
                sql = (
                    f"SELECT run_seq, transition_id FROM states WHERE run_kind = ? "
                    f"AND run_seq IN ({','.join('?' * len(chunk))})"
                )
                rows = cur.execute(sql, (kind, *chunk)).fetchall()
                known.update((by_seq[s], bytes(t)) for s, t in rows)
        return known

    def _write_runs(
        self, cur: sqlite3.Cursor, created: dict[tuple[str, bytes], Any], runs: _Runs, now: float
    ) -> None:
        """Write the batch's run records; a new row carries its current state right away.

        A run not yet stored gets a plain INSERT (a stored one makes it fail, and the batch is
        redone carefully); a stored one an upsert of its metadata, its state written after."""
        fresh: dict[str, list[tuple[Any, ...]]] = {"flow": [], "task": []}
        stored: dict[str, list[tuple[Any, ...]]] = {}  # by upsert statement
        for key, rec in created.items():
            run = runs[key]
            kind = key[0]
            rid = bytearray(key[1])
            if kind == "flow":
                meta, upsert = _flow_row(rec, rid), _FLOW_UPSERT
            else:
                meta, upsert = _task_row(rec, rid), _TASK_UPSERTS[1 if rec.moved else 0]
            if run.exists:
                stored.setdefault(upsert, []).append((None, *meta, *_state_columns(None, kind, now)))
            else:
                run.inserted = True  # this INSERT writes its state; no UPDATE needed
                fresh[kind].append((run.seq, *meta, *_state_columns(run, kind, now)))
        for kind, insert in (("flow", _FLOW_INSERT), ("task", _TASK_INSERT)):
            if fresh[kind]:
                self._insert_rows(cur, insert, "", fresh[kind])
        for upsert, rows in stored.items():
            cur.executemany(upsert, rows)

    def _write_states(
        self, cur: sqlite3.Cursor, runs: _Runs, history: list[tuple[Any, ...]], now: float
    ) -> None:
        for kind in _TABLE:
            rows = [
                (r.seq, bytearray(rid), *_state_columns(r, kind, now))
                for (k, rid), r in runs.items()
                if k == kind and r.dirty and not r.inserted
            ]
            if rows:
                rest = ", ".join(f"column{i}" for i in range(3, len(rows[0]) + 1))
                select = f"column1, column2, '', '', {rest}"
                self._insert_rows(cur, _MOVE[kind], _MOVE_TAIL[kind], rows, select)
        if history:
            self._insert_rows(cur, _HISTORY_INSERT, "", history, _HISTORY_SELECT)

    def _insert_rows(
        self, cur: sqlite3.Cursor, head: str, tail: str, rows: list[tuple[Any, ...]],
        select: str | None = None,
    ) -> None:
        """INSERT many rows with as few statements as possible: `executemany` steps once per
        row, and every step releases and re-takes the GIL. While the runtime keeps the GIL
        busy, each re-take waits up to the switch interval: profiling showed the committer
        spending ~9x more wall time than CPU in a commit, so it could not keep up.

        Rows go in chunks of a few fixed sizes (powers of 4), the last one padded with rows of
        zeros that `WHERE column1 <> 0` drops (the first column is a run's seq, never 0), so
        the statements stay in the connection's statement cache and a batch takes one or two.
        `select` maps the VALUES columns to the table's; the first must be the seq.

        Values are bound fastest as int, float, str or bytearray: sqlite3 runs anything else
        (bytes, None) through its adapter lookup, which cost more than binding itself, hence
        bytearray ids and NULLIF(column, 0) for an absent message."""
        width = len(rows[0])
        sizes = _chunk_sizes(min(_MAX_ROWS, self._max_vars // width))
        select = select or ", ".join(f"column{i}" for i in range(1, width + 1))
        start = 0
        while start < len(rows):
            chunk = rows[start : start + sizes[-1]]
            size = next(s for s in sizes if s >= len(chunk))
            params = list(chain.from_iterable(chunk))
            if size > len(chunk):
                params += (0,) * (width * (size - len(chunk)))
            cur.execute(_multi_row_sql(head, tail, select, width, size), params)
            start += size

    # -- reads (any thread) ----------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (for readers of other tables, `log_store.py`)."""
        return self._reader()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.read_only:
                conn = _open_read_only(self.path)
            else:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
        return conn

    def _check_readable(self) -> None:
        if not self.path.exists():
            raise RunNotFound(f"no headwater database at {self.path}; nothing recorded yet")
        try:
            check_header(self.path)
            version = schema_version(self._reader())
        except (OSError, sqlite3.Error) as exc:
            raise storage_error(self.path, exc) from None
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"database {self.path} has schema version {version}, written by a newer "
                f"headwater; this one reads version {SCHEMA_VERSION}: upgrade headwater"
            )
        if version < SCHEMA_VERSION:
            raise SchemaVersionError(
                f"database {self.path} has schema version {version}, this headwater reads "
                f"version {SCHEMA_VERSION}; run a flow or `headwater server start` once to "
                f"upgrade it"
            )

    def list_flow_runs(self, flt: RunFilter = RunFilter()) -> list[FlowRunInfo]:
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        if flt.state_type:
            where.append("f.state_type = ?")
            args.append(flt.state_type.upper())
        if flt.flow_name:
            where.append("f.flow_name = ?")
            args.append(flt.flow_name)
        if flt.parent_flow_run_id:
            where.append("f.parent_flow_run_id = ?")
            args.append(flt.parent_flow_run_id.bytes)
        sql = (
            f"SELECT {_FLOW_COLUMNS} FROM flow_runs f WHERE {' AND '.join(where)} "
            f"ORDER BY coalesce(f.created, f.start_time, 0) DESC, f.seq DESC LIMIT ?"
        )
        rows = self._reader().execute(sql, [*args, max(0, flt.limit)]).fetchall()
        return [_flow_info(row) for row in rows]

    def resolve_id(self, kind: str, ident: str | UUID) -> UUID:
        """The full run id for `ident`, which may be a unique prefix of one, or for a task run
        also its last digits (at least 6, as the CLI shows them)."""
        text = str(ident).lower()
        digits = text.replace("-", "")
        if len(text) > 36 or not _PREFIX.match(digits):
            raise RunNotFound(f"{text!r} is not a run id or id prefix")
        # Ids are 16-byte BLOBs: a hex prefix is the range [prefix000..., prefixfff...].
        low, high = bytes.fromhex(digits.ljust(32, "0")), bytes.fromhex(digits.ljust(32, "f"))
        rows = self._reader().execute(
            f"SELECT id FROM {_TABLE[kind]} WHERE id BETWEEN ? AND ? LIMIT 2", (low, high)
        ).fetchall()
        rows = [r for r in rows if str(UUID(bytes=r[0])).startswith(text)]  # dashes must match too
        if not rows and kind == "task" and len(digits) >= _MIN_SUFFIX and "-" not in text:
            # Task run ids are time-ordered (`runtime/runs.py`): the CLI shows their last digits.
            rows = self._reader().execute(
                "SELECT id FROM task_runs WHERE hex(id) LIKE ? LIMIT 2", (f"%{digits.upper()}",)
            ).fetchall()
        if not rows:
            raise RunNotFound(f"no {kind} run with id {text!r}")
        if len(rows) > 1:
            raise AmbiguousRunId(f"id prefix {text!r} matches more than one {kind} run")
        return UUID(bytes=rows[0][0])

    def read_flow_run(self, ident: str | UUID) -> FlowRunInfo:
        run_id = self.resolve_id("flow", ident)
        sql = f"SELECT {_FLOW_COLUMNS} FROM flow_runs f WHERE f.id = ?"
        return _flow_info(self._reader().execute(sql, (run_id.bytes,)).fetchone())

    def read_task_run(self, ident: str | UUID) -> TaskRunInfo:
        run_id = self.resolve_id("task", ident)
        sql = f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE id = ?"
        return _task_info(self._reader().execute(sql, (run_id.bytes,)).fetchone())

    def list_task_runs(self, flow_run_id: UUID) -> list[TaskRunInfo]:
        sql = (
            f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE flow_run_id = ? "
            f"ORDER BY coalesce(created, start_time, 0), seq"
        )
        rows = self._reader().execute(sql, (flow_run_id.bytes,)).fetchall()
        return [_task_info(row) for row in rows]

    def read_history(self, run_id: UUID) -> list[StateInfo]:
        rows: list[Any] = []
        for kind, table in _TABLE.items():  # a state is keyed by its run's seq, per kind
            sql = (
                "SELECT timestamp, seq, type, name, message, transition_id FROM states "
                f"WHERE run_kind = ? AND run_seq = (SELECT seq FROM {table} WHERE id = ?)"
            )
            rows += self._reader().execute(sql, (kind, run_id.bytes)).fetchall()
        rows.sort(key=lambda r: (r[0], r[1]))
        return [StateInfo(run_id, r[2], r[3], r[4], r[0], UUID(bytes=r[5])) for r in rows]

    def read_logs(
        self, run_id: UUID | str, *, level: int | str | None = None, task: str | None = None,
        after_seq: int | None = None, limit: int = 1000, tail: bool = False,
    ) -> LogPage:
        """A page of a flow or task run's log lines (`log_store.read_logs`); the same call as
        `StateClient.read_logs`, so the CLI reads either."""
        query, _ = query_for(self.resolve_id, self._reader(), run_id, level=level, task=task,
                             after_seq=after_seq, limit=limit, tail=tail)
        return read_logs(self._reader(), query)

    def stale_flow_runs(self, cutoff: float) -> list[tuple[UUID, float | None]]:
        """RUNNING flow runs whose last sign of life is older than `cutoff`."""
        sql = (
            "SELECT id, last_heartbeat FROM flow_runs WHERE state_type = 'RUNNING' "
            "AND coalesce(last_heartbeat, state_timestamp, 0) < ?"
        )
        rows = self._reader().execute(sql, (cutoff,)).fetchall()
        return [(UUID(bytes=r[0]), r[1]) for r in rows]

    def live_task_runs(self, flow_run_id: UUID) -> list[UUID]:
        """Task runs of a flow run that are still RUNNING or PENDING."""
        sql = (
            "SELECT id FROM task_runs WHERE flow_run_id = ? "
            "AND state_type IN ('RUNNING', 'PENDING')"
        )
        return [UUID(bytes=r[0]) for r in self._reader().execute(sql, (flow_run_id.bytes,))]


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection; on read-only media, where SQLite cannot make the WAL's shared
    memory file beside the database, one that reads the file as it stands (immutable)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        conn.close()
        if exc.sqlite_errorcode & 0xFF not in (8, 14):  # SQLITE_READONLY, SQLITE_CANTOPEN
            raise
        uri = f"file:{path}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
    return conn


def _decide_all(
    states: Sequence[StateRecord], keys: list[tuple[str, bytes]], runs: _Runs,
    seen: dict[bytes, tuple[str, bytes]], known: set[tuple[Any, bytes]], careful: bool,
    history: list[tuple[Any, ...]],
) -> list[tuple[tuple[Any, bytes], Rejection]]:
    """Decide each state in order, appending accepted ones to `history`; returns the refused."""
    refused = []
    for state, key in zip(states, keys):
        tid = _blob(state.transition_id)
        # A re-sent change is recorded once. Optimistically only repeats within the write are
        # skipped (cheaply, by transition id); anything else trips the UNIQUE index.
        if careful:
            if (key, tid) in known:
                continue
            known.add((key, tid))
        elif seen.get(tid) == key:
            continue
        else:
            seen[tid] = key
        run = runs[key]
        reason = _decide(run, state)
        if reason is not None:
            refused.append(((key, tid), Rejection(as_uuid(state.run_id), as_uuid(state.transition_id), reason)))
            continue
        message = state.message
        history.append((
            run.seq, key[0], bytearray(key[1]), state.type, state.name,
            0 if message is None else message, state.timestamp, bytearray(tid),
        ))
    return refused


def _decide(run: _RunState, state: StateRecord) -> str | None:
    """Apply `state` to `run` in memory; returns why it was refused, or None."""
    if not _legal(run.type, state.type, state.name, state.retry):
        reason = rules.check_state(state.type, state.name) or rules.check_transition(
            as_uuid(state.run_id), run.type, state.type, retry=state.retry
        )
        if run.timestamp is not None and state.timestamp < run.timestamp and not rules.check_state(
            state.type, state.name
        ):
            if rules.is_terminal(run.type) and rules.is_terminal(state.type):
                # A run that ended one way (crashed by the sweeper, say) did not also end
                # another: refused, so the process that sent it learns (fencing).
                return reason
            return None  # a late arrival from another process: history only
        return reason
    run.type, run.name, run.timestamp, run.dirty = state.type, state.name, state.timestamp, True
    if state.type == rules.RUNNING and run.start is None:
        run.start = state.timestamp
    if state.type in rules.TERMINAL:
        run.end = state.timestamp
    elif state.retry:
        run.end = None
    return None


@lru_cache(maxsize=1024)
def _legal(current: str | None, type_: str, name: str, retry: bool) -> bool:
    """The rules' verdict, memoized: a few dozen distinct questions, asked for every state.
    Bounded, because state names are free text from clients."""
    return rules.check_state(type_, name) is None and rules.is_allowed(current, type_, retry=retry)


@cache
def _multi_row_sql(head: str, tail: str, select: str, width: int, rows: int) -> str:
    values = ",".join(["(" + ", ".join("?" * width) + ")"] * rows)
    return f"{head}SELECT {select} FROM (VALUES {values}) WHERE column1 <> 0{tail}"


@cache
def _chunk_sizes(most: int) -> tuple[int, ...]:
    """Statement sizes in rows, smallest first: powers of 4 up to `most` (at least 1)."""
    return tuple(4**k for k in range(8) if 4**k <= max(1, most))


def _blob(value: UUID | bytes) -> bytes:
    """`value.bytes` without the property's Python-level call: ids are converted per record.
    Ids the writer process decoded are their raw bytes already (`records.as_uuid`)."""
    if value.__class__ is bytes:
        return value
    return value.int.to_bytes(16, "big")  # type: ignore[union-attr]


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _opt(value: UUID | bytes | None) -> bytearray | None:
    return None if value is None else bytearray(_blob(value))


def _state_columns(run: _RunState | None, kind: str, now: float) -> tuple[Any, ...]:
    """The values of `_STATE_COLUMNS` (plus a flow run's liveness stamp) for a run."""
    if run is None or not run.dirty:
        values: tuple[Any, ...] = (None, None, None, None, None, None)
    else:
        values = (run.type, run.name, run.timestamp, run.start, run.end, now)
    return values if kind == "flow" else values[:5]


def _flow_row(r: FlowRunRecord, rid: bytearray) -> tuple[Any, ...]:
    return (
        rid, r.name, r.flow_name, json.dumps(r.parameters) if r.parameters else "{}",
        _opt(r.parent_flow_run_id), _opt(r.parent_task_run_id), _json_tags(r.tags), r.created,
        r.host, r.pid,
    )


def _task_row(r: TaskRunRecord, rid: bytearray) -> tuple[Any, ...]:
    # Most task runs have no tags and no upstream: skip json.dumps for those.
    upstream = "{}"
    if r.upstream:
        upstream = json.dumps({k: [str(u) for u in v] for k, v in r.upstream.items()})
    return (
        rid, _opt(r.flow_run_id), r.name, r.task_name,
        _json_tags(r.tags), upstream, r.created, r.host, r.pid, int(r.moved),
    )


def _json_tags(tags: Iterable[str]) -> str:
    return json.dumps(list(tags)) if tags else "[]"


def _uuid(value: bytes | None) -> UUID | None:
    return None if value is None else UUID(bytes=value)


def _flow_info(row: Sequence[Any]) -> FlowRunInfo:
    return FlowRunInfo(
        id=UUID(bytes=row[0]), name=row[1], flow_name=row[2], parameters=json.loads(row[3]),
        parent_flow_run_id=_uuid(row[4]), parent_task_run_id=_uuid(row[5]),
        tags=tuple(json.loads(row[6])), created=row[7], start_time=row[8], end_time=row[9],
        state_type=row[10], state_name=row[11], last_heartbeat=row[12], task_run_count=row[13],
        host=row[14], pid=row[15],
    )


def _task_info(row: Sequence[Any]) -> TaskRunInfo:
    upstream = {k: tuple(UUID(u) for u in v) for k, v in json.loads(row[5]).items()}
    return TaskRunInfo(
        id=UUID(bytes=row[0]), flow_run_id=_uuid(row[1]), name=row[2], task_name=row[3],
        tags=tuple(json.loads(row[4])), upstream=upstream, created=row[6], start_time=row[7],
        end_time=row[8], state_type=row[9], state_name=row[10], host=row[11], pid=row[12],
    )
