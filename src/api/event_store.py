"""Events in SQLite (schema v12): what happened, to which resource, in commit order.

Two sources, read as one log:
- **Run state events** are the runs' history rows themselves (`states`), read as events:
  `headwater.flow-run.Completed`, `headwater.task-run.Failed`, ... with the run as resource
  and its flow, deployment, work pool, tags (and a task run's flow run) as related resources.
  A state and its event are the same row, written in the same transaction by construction,
  so the event log and the run history can never disagree, and recording a state writes
  nothing more (issue #19's throughput is untouched).
- **Emitted events** (`emit_event`, `headwater events emit`): rows of `events`, idempotent by
  their id, so a re-sent batch stores nothing twice.

A cursor is the pair (last state seq, last event seq): both are AUTOINCREMENT, so a
follower that resumes from its cursor misses nothing and sees nothing twice.
"""

from __future__ import annotations

import fnmatch
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from .errors import InvalidPayload
from .locked_store import LockedStore

RESOURCE_ID = "headwater.resource.id"
MAX_PAYLOAD_CHARS = 64 * 1024
MAX_EVENT_NAME = 1024
MAX_LABELS = 64
_LABEL_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Event:
    id: UUID
    event: str
    occurred: float
    resource: dict[str, str]
    related: list[dict[str, str]] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def resource_id(self) -> str:
        return self.resource[RESOURCE_ID]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a reader of the event log is: the last state seq and event seq it has seen."""

    states: int = 0
    events: int = 0

    def text(self) -> str:
        return f"{self.states}:{self.events}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        states, _, events = text.partition(":")
        return cls(int(states), int(events or 0))


def check_event(event: Event) -> None:
    """Refuse what the log cannot keep, saying which limit and what to do instead."""
    if not event.event or len(event.event) > MAX_EVENT_NAME:
        raise InvalidPayload(f"an event's name is 1 to {MAX_EVENT_NAME} characters, not {len(event.event)}")
    for labels in (event.resource, *event.related):
        if RESOURCE_ID not in labels:
            raise InvalidPayload(f"event {event.event!r}: every resource needs a {RESOURCE_ID!r} label, got {sorted(labels)}")
        if len(labels) > MAX_LABELS or any(len(str(k)) + len(str(v)) > _LABEL_CHARS for k, v in labels.items()):
            raise InvalidPayload(f"event {event.event!r}: a resource has at most {MAX_LABELS} labels of {_LABEL_CHARS} characters")
    size = len(json.dumps(event.payload))
    if size > MAX_PAYLOAD_CHARS:
        raise InvalidPayload(
            f"event {event.event!r}: its payload is {size} characters as JSON, over the limit of {MAX_PAYLOAD_CHARS}; "
            "put large data in storage and its address in the payload"
        )


def matches(event: Event, name: str | None = None, resource: str | None = None) -> bool:
    """`name` and `resource` are patterns with `*` wildcards (`headwater.flow-run.*`)."""
    if name is not None and not fnmatch.fnmatchcase(event.event, name):
        return False
    return resource is None or fnmatch.fnmatchcase(event.resource_id, resource)


class EventStore(LockedStore):
    """See the module docstring; thread-safe (one connection, one lock)."""

    def emit(self, events: Sequence[Event], received: float | None = None) -> int:
        """Store `events` (already checked); returns how many were new."""
        received = time.time() if received is None else received
        with self._write() as cur:
            before = cur.connection.total_changes
            cur.executemany(
                "INSERT INTO events (id, event, occurred, received, resource_id, resource, related, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                [(e.id.bytes, e.event, e.occurred, received, e.resource_id, json.dumps(e.resource),
                  json.dumps(e.related), json.dumps(e.payload)) for e in events],
            )  # fmt: skip
            return cur.connection.total_changes - before

    def after(self, cursor: Cursor, limit: int = 500) -> tuple[list[Event], Cursor]:
        """Events committed after `cursor`, in commit order within each source, up to
        `limit` of each; and the cursor past them."""
        with self._lock:
            cur = self._conn.cursor()
            states = _state_rows(cur, "s.seq > ? ORDER BY s.seq LIMIT ?", (cursor.states, limit))
            emitted = cur.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (cursor.events, limit)
            ).fetchall()
        events = [_state_event(r) for r in states] + [_emitted(r) for r in emitted]
        events.sort(key=lambda e: e.occurred)
        return events, Cursor(states[-1][0] if states else cursor.states, emitted[-1][0] if emitted else cursor.events)

    def recent(self, since: float, limit: int = 100, name: str | None = None, resource: str | None = None) -> list[Event]:
        """The newest events that occurred after `since` and match, newest first."""
        found: list[Event] = []
        with self._lock:
            cur = self._conn.cursor()
            # Newest first by seq, in pages, until the rows are older than `since`: no index on
            # time is needed (seq grows with time), so recording a state pays for none.
            for source in ("states", "events"):
                last = None
                while True:
                    if source == "states":
                        rows = _state_rows(cur, ("s.seq < ? " if last else "1 ") + "ORDER BY s.seq DESC LIMIT 1000",
                                           (last,) if last else ())  # fmt: skip
                        batch = [(_state_event(r), r[0]) for r in rows]
                    else:
                        rows = cur.execute(
                            f"SELECT {_EVENT_COLUMNS} FROM events " + ("WHERE seq < ? " if last else "")
                            + "ORDER BY seq DESC LIMIT 1000", (last,) if last else (),
                        ).fetchall()  # fmt: skip
                        batch = [(_emitted(r), r[0]) for r in rows]
                    if not batch:
                        break
                    found.extend(e for e, _ in batch if e.occurred >= since and matches(e, name, resource))
                    last = batch[-1][1]
                    if batch[-1][0].occurred < since or len(found) >= limit * 2:
                        break
        found.sort(key=lambda e: e.occurred, reverse=True)
        return found[:limit]


_EVENT_COLUMNS = "seq, id, event, occurred, resource, related, payload"


def _emitted(row: Any) -> Event:
    return Event(UUID(bytes=row[1]), row[2], row[3], json.loads(row[4]), json.loads(row[5]), json.loads(row[6]))


def _state_rows(cur: sqlite3.Cursor, where: str, args: tuple[Any, ...]) -> list[Any]:
    return cur.execute(
        "SELECT s.seq, s.run_kind, s.run_id, s.type, s.name, s.message, s.timestamp, s.transition_id, "
        "coalesce(f.name, t.name), coalesce(f.flow_name, tf.flow_name), coalesce(f.tags, t.tags), "
        "coalesce(f.deployment_id, tf.deployment_id), coalesce(f.work_pool, tf.work_pool), t.flow_run_id "
        "FROM states s LEFT JOIN flow_runs f ON s.run_kind = 'flow' AND f.seq = s.run_seq "
        "LEFT JOIN task_runs t ON s.run_kind = 'task' AND t.seq = s.run_seq "
        f"LEFT JOIN flow_runs tf ON tf.id = t.flow_run_id WHERE {where}",
        args,
    ).fetchall()


def _state_event(row: Any) -> Event:
    _, kind, run_id, type_, name, message, timestamp, transition, run_name, flow_name, tags, deployment, pool, parent = row
    resource = {
        RESOURCE_ID: f"headwater.{kind}-run.{UUID(bytes=run_id)}", "headwater.resource.name": run_name or "",
        "headwater.state-type": type_, "headwater.state-name": name,
    }  # fmt: skip
    related = [{RESOURCE_ID: f"headwater.flow.{flow_name}", "headwater.resource.role": "flow"}] if flow_name else []
    if parent is not None:
        related.append({RESOURCE_ID: f"headwater.flow-run.{UUID(bytes=parent)}", "headwater.resource.role": "flow-run"})
    if deployment is not None:
        related.append({RESOURCE_ID: f"headwater.deployment.{UUID(bytes=deployment)}", "headwater.resource.role": "deployment"})
    if pool is not None:
        related.append({RESOURCE_ID: f"headwater.work-pool.{pool}", "headwater.resource.role": "work-pool"})
    for tag in json.loads(tags or "[]"):
        related.append({RESOURCE_ID: f"headwater.tag.{tag}", "headwater.resource.role": "tag"})
    payload = {"state": {"type": type_, "name": name, "message": message}}
    return Event(UUID(bytes=transition), f"headwater.{kind}-run.{name}", timestamp, resource, related, payload)
