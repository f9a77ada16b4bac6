"""Control messages in SQLite (schema v7): what the service tells a running flow, durably.

A control message is a row addressed to a flow run (`kind` "cancel" now; "resume" and others
later, each with its own JSON `body`), numbered by `seq` in commit order. The service pushes
it to the process that owns the run (`control_service.py`); the process acknowledges it once
it acted (`ack`), and a stream that broke gets every message of its runs not acknowledged yet
again, so nothing is lost, and the client drops seqs it has seen, so nothing is acted on twice.

A row with a `deadline` is also a durable timer: the server's sweeper asks `settle_due` for
the unsettled rows whose deadline passed. For a cancel, a run still CANCELLING then is ended
CANCELLED by the service itself, with its live task runs, and the message says so; a run that
ended already just settles its row.

Runs' states are written here, on this store's own connection, in the same transaction as
the messages: a cancel moves the run and its live subflows to CANCELLING and queues their
messages at once, or does nothing. `Storage` notices (SQLite's `data_version`) and re-reads
what it had cached. The orchestration rules (`rules.py`) then fence what the flow's process
reports afterwards: CANCELLING leads only to an end, and an end only to nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from . import rules
from .errors import RunNotFound, TransitionRejected
from .locked_store import LockedStore

CANCEL = "cancel"
#: How long a cancelled run's process has to stop before the service ends the run itself.
CANCEL_DEADLINE = 30.0
_LIVE = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED")
_MESSAGE_COLUMNS = "seq, flow_run_id, kind, body, created, deadline"


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """One message to a flow run's process. `body` is the kind's own fields."""

    seq: int
    flow_run_id: UUID
    kind: str
    body: dict[str, Any]
    created: float
    deadline: float | None


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What a cancel request did: the runs it moved to CANCELLING (the asked one first, then
    its live subflows), the messages queued for them, and whether it was already underway."""

    flow_run_id: UUID
    cancelled: tuple[UUID, ...]
    messages: tuple[ControlMessage, ...]
    already: bool
    deadline: float


class ControlStore(LockedStore):
    """Control messages under one database file; thread-safe (one connection, one lock)."""

    # -- cancel ----------------------------------------------------------------------------

    def request_cancel(
        self, flow_run_id: UUID, *, deadline_seconds: float = CANCEL_DEADLINE, by: str | None = None,
        now: float | None = None,
    ) -> CancelOutcome:
        """Move the run and its live subflows (all the way down) to CANCELLING and queue a
        cancel message for each, in one transaction. A run already CANCELLING is left as it is
        (`already`); a run that ended is refused (`TransitionRejected`), naming its end."""
        now = time.time() if now is None else now
        with self._write() as cur:
            return cancel_in(cur, flow_run_id, deadline_seconds=deadline_seconds, by=by, now=now)

    def settle_due(self, now: float | None = None) -> list[UUID]:
        """The durable timer: settle every row whose deadline passed. A cancelled run its
        process did not end in time is ended CANCELLED here, with its live task runs; returns
        the runs so ended."""
        now = time.time() if now is None else now
        ended: list[UUID] = []
        with self._write() as cur:
            due = cur.execute(
                "SELECT seq, flow_run_id, kind, acked, deadline, created FROM control_messages "
                "WHERE settled IS NULL AND deadline <= ? ORDER BY seq", (now,),
            ).fetchall()
            for seq, run_blob, kind, acked, deadline, created in due:
                run_id = UUID(bytes=run_blob)
                row = cur.execute("SELECT state_type FROM flow_runs WHERE id = ?", (run_blob,)).fetchone()
                if kind == CANCEL and row is not None and row[0] == rules.CANCELLING:
                    heard = "acknowledged the cancel but did not stop" if acked else "did not acknowledge the cancel"
                    message = (
                        f"cancelled by the state service: the flow run's process {heard} within "
                        f"{deadline - created:g} s (hung or gone); anything it reports later is refused"
                    )
                    _move(cur, "flow", run_id, rules.CANCELLED, "Cancelled", message, now)
                    for (task_blob,) in cur.execute(
                        f"SELECT id FROM task_runs WHERE flow_run_id = ? AND state_type IN {_LIVE}", (run_blob,)
                    ).fetchall():
                        _move(cur, "task", UUID(bytes=task_blob), rules.CANCELLED, "Cancelled",
                              f"flow run {message}", now)
                    ended.append(run_id)
                cur.execute("UPDATE control_messages SET settled = ? WHERE seq = ?", (now, seq))
        return ended

    def next_deadline(self) -> float | None:
        rows = self._read("SELECT min(deadline) FROM control_messages WHERE settled IS NULL")
        return None if rows[0][0] is None else float(rows[0][0])

    # -- delivery --------------------------------------------------------------------------

    def pending(self, flow_run_ids: Sequence[UUID], after_seq: int = 0) -> list[ControlMessage]:
        """Messages for these runs not yet acknowledged, after `after_seq`, in order. A row
        its deadline settled is still sent: a process that wakes from a hang must still stop."""
        found: list[ControlMessage] = []
        for start in range(0, len(flow_run_ids), 500):
            ids = [r.bytes for r in flow_run_ids[start : start + 500]]
            marks = ", ".join("?" * len(ids))
            found += _messages(self._read(
                f"SELECT {_MESSAGE_COLUMNS} FROM control_messages WHERE flow_run_id IN ({marks}) "
                "AND seq > ? AND acked IS NULL", [*ids, after_seq],
            ))
        return sorted(found, key=lambda msg: msg.seq)

    def ack(self, seqs: Sequence[int], now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._write() as cur:
            cur.executemany(
                "UPDATE control_messages SET acked = ? WHERE seq = ? AND acked IS NULL",
                [(now, seq) for seq in seqs],
            )



def cancel_in(
    cur: sqlite3.Cursor, flow_run_id: UUID, *, deadline_seconds: float = CANCEL_DEADLINE, by: str | None = None,
    now: float,
) -> CancelOutcome:
    """`ControlStore.request_cancel` inside a transaction of the caller's (the dispatcher's
    `cancel_other` overlap policy cancels a schedule's previous run in its claim's transaction)."""
    deadline = now + deadline_seconds
    who = f" by {by}" if by else ""
    row = cur.execute(
        "SELECT state_type FROM flow_runs WHERE id = ?", (flow_run_id.bytes,)
    ).fetchone()
    if row is None:
        raise RunNotFound(f"no flow run with id {str(flow_run_id)!r}")
    state = row[0]
    if rules.is_terminal(state):
        raise TransitionRejected(
            f"flow run {flow_run_id} already finished ({state}); there is nothing to cancel"
        )
    if state == rules.CANCELLING:
        found = cur.execute(
            "SELECT deadline FROM control_messages WHERE flow_run_id = ? AND kind = ? "
            "ORDER BY seq DESC LIMIT 1", (flow_run_id.bytes, CANCEL),
        ).fetchone()
        return CancelOutcome(flow_run_id, (), (), True, float(found[0]) if found else deadline)
    runs = [flow_run_id, *_live_subflows(cur, flow_run_id)]
    messages = []
    for run_id in runs:
        why = "cancel requested" if run_id == flow_run_id else f"parent flow run {flow_run_id} cancelled"
        _move(cur, "flow", run_id, rules.CANCELLING, "Cancelling", f"{why}{who}", now)
        body = {"reason": f"{why}{who}", "deadline": deadline}
        seq = cur.execute(
            "INSERT INTO control_messages (flow_run_id, kind, body, created, deadline) "
            "VALUES (?, ?, ?, ?, ?)", (run_id.bytes, CANCEL, json.dumps(body), now, deadline),
        ).lastrowid
        assert seq is not None
        messages.append(ControlMessage(seq, run_id, CANCEL, body, now, deadline))
    return CancelOutcome(flow_run_id, tuple(runs), tuple(messages), False, deadline)


def _live_subflows(cur: sqlite3.Cursor, flow_run_id: UUID) -> list[UUID]:
    """Every live flow run below `flow_run_id` (subflows of subflows too), parents first."""
    rows = cur.execute(
        "WITH RECURSIVE below(id, depth) AS (SELECT ?, 0 UNION ALL "
        "SELECT f.id, below.depth + 1 FROM flow_runs f JOIN below ON f.parent_flow_run_id = below.id) "
        f"SELECT below.id FROM below JOIN flow_runs f ON f.id = below.id "
        f"WHERE below.depth > 0 AND f.state_type IN {_LIVE} ORDER BY below.depth",
        (flow_run_id.bytes,),
    ).fetchall()
    return [UUID(bytes=r[0]) for r in rows]


def _move(cur: sqlite3.Cursor, kind: str, run_id: UUID, type_: str, name: str, message: str, now: float) -> None:
    """Set a run's current state and append it to the run's history (as `Storage` would)."""
    table = "flow_runs" if kind == "flow" else "task_runs"
    end = ", end_time = ?" if rules.is_terminal(type_) else ""
    args: list[Any] = [type_, name, now] + ([now] if end else []) + [run_id.bytes]
    cur.execute(f"UPDATE {table} SET state_type = ?, state_name = ?, state_timestamp = ?{end} WHERE id = ?", args)
    cur.execute(
        "INSERT INTO states (run_seq, run_kind, run_id, type, name, message, timestamp, transition_id) "
        f"SELECT seq, ?, id, ?, ?, ?, ?, ? FROM {table} WHERE id = ?",
        (kind, type_, name, message, now, uuid.uuid4().bytes, run_id.bytes),
    )


def _messages(rows: list[Any]) -> list[ControlMessage]:
    return [
        ControlMessage(int(seq), UUID(bytes=run), kind, json.loads(body), float(created), deadline)
        for seq, run, kind, body, created, deadline in rows
    ]
