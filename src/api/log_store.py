"""Run logs in SQLite (the `logs` table, schema v6): the rows a commit writes, and the reads.

Writes happen inside the group committer's transaction (`Storage._apply` inserts
`log_rows(...)` with its multi-row INSERT), so a batch's log lines commit with its states.
Reads take any connection (a reader thread's, or a read-only one the CLI opened).

Order: a line's `seq` is its commit order, which is what paging (`after_seq`) and following
resume from. One process's lines of a run commit in the order they were written (the
recorder's FIFO), so within a process seq order is time order; lines of two processes (a
worker's task run beside its flow) may interleave a few milliseconds out of timestamp order.

A flow run's logs are its own lines, its task runs' and its subflows' (their own, their task
runs' and theirs in turn): the subflows are found by `parent_flow_run_id`, which is indexed,
so that costs one small recursive query per read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from .errors import RunNotFound
from .log_records import LogLine, LogPage, LogRecord, level_number

LOG_INSERT = (
    "INSERT INTO logs (flow_run_id, task_run_id, level, timestamp, logger, message, exception) "
)
#: Most lines one read returns, whatever the caller asked for.
MAX_PAGE = 10_000

_TREE = """
WITH RECURSIVE tree(id, depth) AS (
    SELECT ?, 0 UNION ALL
    SELECT f.id, tree.depth + 1 FROM flow_runs f JOIN tree ON f.parent_flow_run_id = tree.id
    WHERE tree.depth < 64
)
SELECT id FROM tree
"""
_SELECT = """
SELECT l.seq, l.flow_run_id, l.task_run_id,
    coalesce(t.name, CASE WHEN l.flow_run_id <> ? THEN f.name END),
    l.level, l.timestamp, l.logger, l.message, l.exception
FROM logs l
LEFT JOIN task_runs t ON t.id = l.task_run_id
LEFT JOIN flow_runs f ON f.id = l.flow_run_id
"""


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Which lines to read. `flow_run_id` is the flow run whose logs (and its subflows') are
    read; `task_run_id` narrows them to one task run's. `task` matches a task's name or a task
    run's name. `tail`: the last `limit` lines instead of the first after `after_seq`."""

    flow_run_id: UUID
    task_run_id: UUID | None = None
    min_level: int = 0
    task: str | None = None
    after_seq: int = 0
    limit: int = 1000
    tail: bool = False


def log_rows(logs: Sequence[LogRecord]) -> list[tuple[Any, ...]]:
    """The VALUES of `LOG_INSERT` for `logs`; ids as bytearray, which sqlite3 binds fastest."""
    return [
        (
            bytearray(r.flow_run_id.bytes),
            None if r.task_run_id is None else bytearray(r.task_run_id.bytes),
            int(r.level), float(r.timestamp), r.logger, r.message, r.exception,
        )
        for r in logs
    ]


def read_logs(conn: sqlite3.Connection, query: LogQuery) -> LogPage:
    """One page of lines, oldest first (see the module docstring for what "first" means)."""
    flow = query.flow_run_id.bytes
    if query.task_run_id is not None:
        ids = [flow]
    else:
        ids = [row[0] for row in conn.execute(_TREE, (flow,))]
    where = [
        "l.flow_run_id = ?" if len(ids) == 1 else f"l.flow_run_id IN ({','.join('?' * len(ids))})",
        "l.seq > ?", "l.level >= ?",
    ]
    args: list[Any] = [flow, *ids, max(0, query.after_seq), query.min_level]
    if query.task_run_id is not None:
        where.append("l.task_run_id = ?")
        args.append(query.task_run_id.bytes)
    if query.task is not None:
        where.append("(t.task_name = ? OR t.name = ?)")
        args += [query.task, query.task]
    order = "DESC" if query.tail else ""
    sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY l.seq {order} LIMIT ?"
    rows = conn.execute(sql, [*args, max(0, min(query.limit, MAX_PAGE))]).fetchall()
    if query.tail:
        rows.reverse()
    lines = tuple(_line(row) for row in rows)
    return LogPage(lines, lines[-1].seq if lines else max(0, query.after_seq))


def run_state(conn: sqlite3.Connection, kind: str, run_id: UUID) -> tuple[str | None, float]:
    """The current state type of a run (None: none yet, or no such run) and when it was
    entered (0.0 when unknown)."""
    table = "flow_runs" if kind == "flow" else "task_runs"
    row = conn.execute(f"SELECT state_type, state_timestamp FROM {table} WHERE id = ?", (run_id.bytes,)).fetchone()
    return (None, 0.0) if row is None else (row[0], row[1] or 0.0)


def task_flow_run(conn: sqlite3.Connection, task_run_id: UUID) -> UUID | None:
    """The flow run a task run belongs to."""
    row = conn.execute("SELECT flow_run_id FROM task_runs WHERE id = ?", (task_run_id.bytes,)).fetchone()
    return None if row is None or row[0] is None else UUID(bytes=row[0])


def _line(row: Sequence[Any]) -> LogLine:
    return LogLine(
        seq=row[0], flow_run_id=UUID(bytes=row[1]),
        task_run_id=None if row[2] is None else UUID(bytes=row[2]), label=row[3], level=row[4],
        timestamp=row[5], logger=row[6], message=row[7], exception=row[8],
    )


def query_for(
    resolve: Callable[[str, str | UUID], UUID], conn: sqlite3.Connection, ident: UUID | str, *,
    level: int | str | None, task: str | None, after_seq: int | None, limit: int, tail: bool,
) -> tuple[LogQuery, str]:
    """The query for the logs of run `ident` (a flow or task run's id, or a unique prefix),
    and the kind of run it named. `resolve` is `Storage.resolve_id`."""
    try:
        flow_run_id, task_run_id, kind = resolve("flow", ident), None, "flow"
    except RunNotFound:
        task_run_id, kind = resolve("task", ident), "task"
        found = task_flow_run(conn, task_run_id)
        if found is None:
            raise RunNotFound(f"task run {task_run_id} belongs to no flow run, so has no logs") from None
        flow_run_id = found
    query = LogQuery(flow_run_id, task_run_id, level_number(level), task, after_seq or 0, limit, tail)
    return query, kind
