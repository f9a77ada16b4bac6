"""Pauses in SQLite (schema v8): a flow run waiting for someone, and how the wait ended.

A pause is a row (`pauses`): the flow run, its `key` (unique within the run), the JSON schema
the resume's input must fit (none: the pause takes no input), when it was made, its
deadline, and how it ended (`outcome` "resumed" / "rejected" / "timed_out" / "ended": the run
ended some other way, a cancel say), by whom, with which input. Every decision is one
transaction on this store's own connection, which also writes the run's state and history
(as the cancel path does, `control_store.py`), so a run is never shown paused without an open
pause, nor decided twice:

- `pause`: RUNNING -> PAUSED and a new open row; or, when the run already has a row with this
  key that was resumed, nothing (the answer carries the stored input, so a re-executed pause,
  a flow retried say, goes on as the first one did).
- `resume`: the input is validated against the stored schema here, at the resume call, with
  `jsonschema` (the reference implementation of the standard pydantic's schemas follow, so
  the service validates without the flow's classes); invalid input raises `InvalidRunInput`
  naming each field and changes nothing. Valid: the row is resolved, PAUSED -> RUNNING with
  a message naming who resumed and the input, and a "resume" control message is queued for
  the run's process, which continues from its pause.
- `reject`: the row is resolved "rejected", PAUSED -> FAILED with "rejected by NAME: REASON",
  and a "reject" control message is queued, so the paused body raises `PauseRejected` (the
  service's FAILED is the run's end, as for a timeout).
- `settle_due` (the server's sweeper, a durable timer like the cancel deadline): an open pause
  past its deadline ends its run FAILED, the message saying the pause timed out, and queues a
  "pause_timeout" message so a living process raises `PausedRunTimeout` from its pause.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from ..errors import InvalidRunInput
from . import rules
from .control_store import ControlMessage, _move
from .dbfile import storage_error
from .errors import RunNotFound, TransitionRejected
from .locked_store import LockedStore

RESUME = "resume"
REJECT = "reject"
PAUSE_TIMEOUT = "pause_timeout"
#: The schema key marking a builtin type wrapped in a one-field model (`value`): a resume's
#: input that is not already `{"value": ...}` is wrapped, so `--input 5` fits `int`.
WRAPPED = "x-headwater-value"
#: Longest run input quoted in a state's message (the full input stays in the pause row).
_QUOTED = 2000
_COLUMNS = "id, flow_run_id, key, input_schema, created, deadline, resolved, outcome, resolved_by, run_input"


@dataclass(frozen=True, slots=True)
class PauseInfo:
    """One pause of a flow run. `input_schema` is None for a pause that takes no input;
    `outcome` is None while it waits."""

    id: int
    flow_run_id: UUID
    key: str
    input_schema: dict[str, Any] | None
    created: float
    deadline: float
    resolved: float | None
    outcome: str | None
    resolved_by: str | None
    run_input: Any


@dataclass(frozen=True, slots=True)
class Resumed:
    """What `resume` did: the pause it resolved and the message queued for the run's process."""

    pause: PauseInfo
    message: ControlMessage


@dataclass(frozen=True, slots=True)
class Rejected:
    """What `reject` did: the pause it resolved, the message queued for the run's process,
    and the FAILED state's message ("rejected by NAME: REASON")."""

    pause: PauseInfo
    message: ControlMessage
    said: str


class PauseStore(LockedStore):
    """Pauses under one database file; thread-safe (one connection, one lock)."""

    # -- the flow's side -------------------------------------------------------------------

    def pause(
        self, flow_run_id: UUID, key: str, input_schema: dict[str, Any] | None, timeout: float,
        now: float | None = None,
    ) -> PauseInfo:
        """Pause the run (RUNNING -> PAUSED) until `now + timeout`, or, if a pause with this
        key was resumed already, return that one as it ended (the caller does not wait)."""
        now = time.time() if now is None else now
        if input_schema is not None:
            _validator(input_schema)  # a schema that is not one is refused here, not at resume
        with self._write() as cur:
            found = cur.execute(
                f"SELECT {_COLUMNS} FROM pauses WHERE flow_run_id = ? AND key = ?", (flow_run_id.bytes, key)
            ).fetchone()
            if found is not None and found[7] == "resumed":
                return _pause(found)
            state = _state_of(cur, flow_run_id)
            if found is not None and found[7] is None and state == rules.PAUSED:
                return _pause(found)  # the same pause asked again (a retried call)
            if state != rules.RUNNING:
                raise TransitionRejected(f"flow run {flow_run_id} is {state}, not RUNNING; it cannot pause")
            deadline = now + timeout
            until = datetime.fromtimestamp(deadline, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
            waits = f"input {input_schema.get('title', 'a value')!r}" if input_schema else "a resume"
            _move(cur, "flow", flow_run_id, rules.PAUSED, "Paused",
                  f"waiting for {waits} until {until} (pause {key!r})", now)
            schema_text = None if input_schema is None else json.dumps(input_schema)
            if found is not None:  # a pause with this key that ended otherwise: wait again
                cur.execute("DELETE FROM pauses WHERE id = ?", (found[0],))
            pause_id = cur.execute(
                "INSERT INTO pauses (flow_run_id, key, input_schema, created, deadline) VALUES (?, ?, ?, ?, ?)",
                (flow_run_id.bytes, key, schema_text, now, deadline),
            ).lastrowid
            assert pause_id is not None
        return PauseInfo(pause_id, flow_run_id, key, input_schema, now, deadline, None, None, None, None)

    # -- the resumer's side ----------------------------------------------------------------

    def resume(self, flow_run_id: UUID, run_input: Any = None, *, by: str | None = None,
               now: float | None = None) -> Resumed:
        """Resume the run's open pause with `run_input` (JSON data; None for none), validated
        against the pause's schema first: `InvalidRunInput` changes nothing. A run that is not
        paused is refused (`TransitionRejected`)."""
        now = time.time() if now is None else now
        with self._write() as cur:
            pause = _open_pause(cur, flow_run_id, "resume")
            run_input = checked_input(flow_run_id, pause.input_schema, run_input)
            who = by or "someone unnamed"
            text = "" if run_input is None else json.dumps(run_input, sort_keys=True)
            quoted = text if len(text) <= _QUOTED else f"{text[:_QUOTED]}... [{len(text) - _QUOTED} more characters]"
            said = f"resumed by {who}" + (f" with input {quoted}" if text else "") + f" (pause {pause.key!r})"
            _move(cur, "flow", flow_run_id, rules.RUNNING, "Running", said, now)
            cur.execute(
                "UPDATE pauses SET resolved = ?, outcome = 'resumed', resolved_by = ?, run_input = ? WHERE id = ?",
                (now, who, text or None, pause.id),
            )
            message = _queue(cur, flow_run_id, RESUME, {"key": pause.key, "input": run_input, "by": who}, now)
        ended = PauseInfo(pause.id, flow_run_id, pause.key, pause.input_schema, pause.created, pause.deadline,
                          now, "resumed", who, run_input)
        return Resumed(ended, message)

    def reject(self, flow_run_id: UUID, reason: str | None = None, *, by: str | None = None,
               now: float | None = None) -> Rejected:
        """Reject the run's open pause: PAUSED -> FAILED, "rejected by NAME: REASON", and a
        "reject" message queued so the paused body raises `PauseRejected`. A run that is not
        paused is refused (`TransitionRejected`). The reason lives in the run's history (the
        state's message), not in the pause row: no schema change for one line of text."""
        now = time.time() if now is None else now
        with self._write() as cur:
            pause = _open_pause(cur, flow_run_id, "reject")
            who = by or "someone unnamed"
            said = f"rejected by {who}" + (f": {reason}" if reason else "")
            _move(cur, "flow", flow_run_id, rules.FAILED, "Failed", said, now)
            cur.execute(
                "UPDATE pauses SET resolved = ?, outcome = 'rejected', resolved_by = ? WHERE id = ?",
                (now, who, pause.id),
            )
            body = {"key": pause.key, "by": who, "reason": reason, "message": said}
            message = _queue(cur, flow_run_id, REJECT, body, now)
        ended = PauseInfo(pause.id, flow_run_id, pause.key, pause.input_schema, pause.created, pause.deadline,
                          now, "rejected", who, None)
        return Rejected(ended, message, said)

    # -- the timer -------------------------------------------------------------------------

    def settle_due(self, now: float | None = None) -> list[ControlMessage]:
        """End every run whose open pause passed its deadline FAILED; returns the
        "pause_timeout" messages queued for their processes (to push now)."""
        now = time.time() if now is None else now
        messages: list[ControlMessage] = []
        with self._write() as cur:
            due = cur.execute(
                f"SELECT {_COLUMNS} FROM pauses WHERE resolved IS NULL AND deadline <= ? ORDER BY id", (now,)
            ).fetchall()
            for row in due:
                pause = _pause(row)
                if _state_of(cur, pause.flow_run_id, missing_ok=True) != rules.PAUSED:
                    cur.execute("UPDATE pauses SET resolved = ?, outcome = 'ended' WHERE id = ?", (now, pause.id))
                    continue
                reason = (
                    f"the pause timed out: nobody resumed the flow run within "
                    f"{pause.deadline - pause.created:g} s (pause {pause.key!r})"
                )
                _move(cur, "flow", pause.flow_run_id, rules.FAILED, "Failed", reason, now)
                cur.execute("UPDATE pauses SET resolved = ?, outcome = 'timed_out' WHERE id = ?", (now, pause.id))
                messages.append(_queue(cur, pause.flow_run_id, PAUSE_TIMEOUT, {"key": pause.key, "reason": reason}, now))
        return messages

    def next_deadline(self) -> float | None:
        with self._lock:
            try:
                row = self._conn.execute("SELECT min(deadline) FROM pauses WHERE resolved IS NULL").fetchone()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from None
        return None if row[0] is None else float(row[0])

    def read(self, flow_run_id: UUID) -> PauseInfo | None:
        """The run's latest pause (open or ended), or None."""
        with self._lock:
            try:
                row = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM pauses WHERE flow_run_id = ? ORDER BY id DESC LIMIT 1",
                    (flow_run_id.bytes,),
                ).fetchone()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from None
        return None if row is None else _pause(row)


def checked_input(flow_run_id: UUID, schema: dict[str, Any] | None, run_input: Any) -> Any:
    """`run_input` as it will be stored and delivered (a builtin's value wrapped as
    `{"value": ...}`), or `InvalidRunInput` naming every field that does not fit `schema`."""
    if schema is None:
        if run_input is not None:
            raise InvalidRunInput(
                f"invalid run input for flow run {flow_run_id}: this pause takes no input; "
                "resume it without one (the run is still paused)", ["(input): this pause takes no input"])
        return None
    if schema.get(WRAPPED) and not (isinstance(run_input, dict) and set(run_input) == {"value"}):
        run_input = {"value": run_input}
    if run_input is None:
        run_input = {}
    errors = [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(input)'}: {error.message}"
        for error in sorted(_validator(schema).iter_errors(run_input), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if errors:
        raise InvalidRunInput(
            f"invalid run input for flow run {flow_run_id} (the run is still paused):\n  " + "\n  ".join(errors),
            errors,
        )
    return run_input


def _validator(schema: dict[str, Any]) -> Any:
    import jsonschema  # only the service validates, and only on a pause or a resume

    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRunInput(f"the pause's input schema is not a JSON schema: {exc.message}", [exc.message]) from None
    return cls(schema)


def _open_pause(cur: sqlite3.Cursor, flow_run_id: UUID, verb: str) -> PauseInfo:
    """The run's open pause, or `TransitionRejected`: only a PAUSED run can be decided."""
    state = _state_of(cur, flow_run_id)
    found = cur.execute(
        f"SELECT {_COLUMNS} FROM pauses WHERE flow_run_id = ? AND resolved IS NULL ORDER BY id DESC LIMIT 1",
        (flow_run_id.bytes,),
    ).fetchone()
    if state != rules.PAUSED or found is None:
        raise TransitionRejected(f"flow run {flow_run_id} is {state}, not PAUSED; there is nothing to {verb}")
    return _pause(found)


def _queue(cur: sqlite3.Cursor, flow_run_id: UUID, kind: str, body: dict[str, Any], now: float) -> ControlMessage:
    """Queue a control message for the run's process in the decision's own transaction, so
    the decision and its delivery commit together (the caller pushes it after the commit)."""
    seq = cur.execute(
        "INSERT INTO control_messages (flow_run_id, kind, body, created) VALUES (?, ?, ?, ?)",
        (flow_run_id.bytes, kind, json.dumps(body), now),
    ).lastrowid
    assert seq is not None
    return ControlMessage(seq, flow_run_id, kind, body, now, None)


def _state_of(cur: sqlite3.Cursor, flow_run_id: UUID, *, missing_ok: bool = False) -> str | None:
    row = cur.execute("SELECT state_type FROM flow_runs WHERE id = ?", (flow_run_id.bytes,)).fetchone()
    if row is None and not missing_ok:
        raise RunNotFound(f"no flow run with id {str(flow_run_id)!r}")
    return None if row is None else str(row[0])


def _pause(row: Any) -> PauseInfo:
    pid, run, key, schema, created, deadline, resolved, outcome, by, run_input = row
    return PauseInfo(
        int(pid), UUID(bytes=run), key, None if schema is None else json.loads(schema), float(created),
        float(deadline), resolved, outcome, by, None if run_input is None else json.loads(run_input),
    )


def read_pause_readonly(path: Path, flow_run_id: UUID) -> PauseInfo | None:
    """The run's latest pause, read without writing anything (the CLI's `runs show`); None
    also for a database from before pauses existed."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise storage_error(path, exc) from None
    try:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM pauses WHERE flow_run_id = ? ORDER BY id DESC LIMIT 1", (flow_run_id.bytes,)
        ).fetchone()
    except sqlite3.OperationalError:  # no such table: written before schema v8
        return None
    finally:
        conn.close()
    return None if row is None else _pause(row)
