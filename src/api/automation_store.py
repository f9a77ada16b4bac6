"""Automations in SQLite (schema v13): a trigger and actions, evaluated over the event log,
each firing recorded once and its actions carried out from an outbox.

- **Evaluation is a transaction.** `evaluate` reads the events after an automation's cursor,
  runs its trigger over them (`triggers.py`: deterministic, its state plain JSON), and in ONE
  transaction stores the new trigger state, the new cursor and every firing. A crash before
  the commit leaves the old cursor and state, and evaluating again makes the same firings
  with the same keys (the unique index keeps one): a trigger fires exactly once per firing,
  across a restart.
- **The outbox.** A firing row is its actions' to-do list: `next_action` is the index of the
  first action not yet done, advanced in the transaction that records each action's success,
  so a restart resumes after the last action done. Actions that create something carry an
  idempotency key derived from the firing (`run-deployment`: the run's key), so even an
  action redone after a crash between doing and recording it does not act twice; a webhook
  carries the key as an `Idempotency-Key` header for its receiver.
- **Loop guard.** An automation whose trigger would count the events its own actions emit
  (`headwater.automation.action.*`), match-everything triggers included, is refused at
  creation (Prefect #11470).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from .errors import AutomationNotFound, InvalidPayload, TransitionRejected
from .event_store import Cursor, Event, EventStore
from .locked_store import LockedStore
from .deadline_triggers import DeadlineState, DeadlineTrigger
from .compound_triggers import evaluate_any, is_proactive, new_state, tick_any, trigger_from_dict, triggers_itself
from .triggers import EventTrigger, Firing, TriggerState, firing_key

_BLOCK_REF = re.compile(r"[^/\s]+/\S.*")
ACTION_EVENTS = {"headwater.automation.action.*"}
ACTION_TYPES = (
    "run-deployment", "cancel-flow-run", "pause-deployment", "resume-deployment", "pause-automation",
    "resume-automation", "call-webhook", "send-notification", "do-nothing",
)  # fmt: skip
#: Seconds between an action's failed attempts: doubling from this, at most `RETRY_MOST`.
RETRY_FIRST, RETRY_MOST, MAX_ATTEMPTS = 1.0, 300.0, 8
#: The most stored events a dry run replays (the newest, when there are more).
DRY_RUN_EVENTS = 100_000


@dataclass(frozen=True, slots=True)
class Automation:
    id: UUID
    name: str
    description: str | None
    trigger: dict[str, Any]
    actions: list[dict[str, Any]]
    enabled: bool
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class FiringRow:
    seq: int
    automation_id: UUID
    key: str
    kind: str
    body: dict[str, Any]
    created: float
    next_action: int
    attempts: int
    finished: float | None
    error: str | None


_COLUMNS = "id, name, description, trigger, actions, enabled, created, updated"
_FIRING_COLUMNS = "seq, automation_id, key, kind, body, created, next_action, attempts, finished, error"


def _automation(row: Any) -> Automation:
    return Automation(UUID(bytes=row[0]), row[1], row[2], json.loads(row[3]), json.loads(row[4]), bool(row[5]), row[6], row[7])


def _firing(row: Any) -> FiringRow:
    return FiringRow(row[0], UUID(bytes=row[1]), row[2], row[3], json.loads(row[4]), row[5], row[6], row[7], row[8], row[9])


def check_actions(actions: list[dict[str, Any]]) -> None:
    for i, action in enumerate(actions):
        kind = action.get("type")
        if kind not in ACTION_TYPES:
            raise InvalidPayload(f"action {i}: type {kind!r} is not one of {', '.join(ACTION_TYPES)}")
        needs = {"run-deployment": "deployment", "pause-deployment": "deployment", "resume-deployment": "deployment",
                 "pause-automation": "automation", "resume-automation": "automation", "call-webhook": "url",
                 "send-notification": "body"}.get(kind)  # fmt: skip
        if needs and not action.get(needs):
            raise InvalidPayload(f"action {i} ({kind}) needs {needs!r}")
        if kind == "send-notification":
            block = action.get("block")
            if not isinstance(block, str) or not _BLOCK_REF.fullmatch(block):
                raise InvalidPayload(
                    f"action {i} (send-notification) needs 'block' as 'type-slug/name' (e.g. "
                    f"'slack-webhook/ops-alerts'), got {block!r}"
                )


class AutomationStore(LockedStore):
    """See the module docstring; thread-safe (one connection, one lock)."""

    def create(self, name: str, trigger: dict[str, Any], actions: list[dict[str, Any]], *,
               description: str | None = None, enabled: bool = True, now: float | None = None) -> Automation:  # fmt: skip
        """A new automation, evaluated from now on (its cursor starts at the log's end)."""
        parsed = trigger_from_dict(trigger)
        check_actions(actions)
        if triggers_itself(parsed, ACTION_EVENTS):
            raise TransitionRejected(
                f"automation {name!r}: its trigger would count the events its own actions emit "
                f"({', '.join(sorted(ACTION_EVENTS))}), so it could fire itself forever; narrow `expect` "
                "(and `match`) to the events it is about"
            )
        now = time.time() if now is None else now
        with self._write() as cur:
            if cur.execute("SELECT 1 FROM automations WHERE name = ?", (name,)).fetchone():
                raise TransitionRejected(f"automation {name!r} exists already; delete it first or choose another name")
            states, events = cur.execute("SELECT (SELECT max(seq) FROM states), (SELECT max(seq) FROM events)").fetchone()
            ident = uuid.uuid4().bytes
            cur.execute(
                f"INSERT INTO automations ({_COLUMNS}, state, cursor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{{}}', ?)",
                (ident, name, description, json.dumps(parsed.to_dict()), json.dumps(actions), int(enabled), now, now,
                 Cursor(int(states or 0), int(events or 0)).text()),
            )  # fmt: skip
            return _automation(cur.execute(f"SELECT {_COLUMNS} FROM automations WHERE id = ?", (ident,)).fetchone())

    def read(self, name: str) -> Automation:
        rows = self._read(f"SELECT {_COLUMNS} FROM automations WHERE name = ?", (name,))
        if not rows:
            raise AutomationNotFound(f"no automation {name!r}; `headwater automation ls` lists them")
        return _automation(rows[0])

    def all(self) -> list[Automation]:
        return [_automation(r) for r in self._read(f"SELECT {_COLUMNS} FROM automations ORDER BY name")]

    def set_enabled(self, name: str, enabled: bool) -> Automation:
        with self._write() as cur:
            cur.execute("UPDATE automations SET enabled = ?, updated = ? WHERE name = ?", (int(enabled), time.time(), name))
            if cur.rowcount == 0:
                raise AutomationNotFound(f"no automation {name!r}; `headwater automation ls` lists them")
        return self.read(name)

    def delete(self, name: str) -> None:
        with self._write() as cur:
            row = cur.execute("SELECT id FROM automations WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise AutomationNotFound(f"no automation {name!r}; `headwater automation ls` lists them")
            cur.execute("DELETE FROM automation_firings WHERE automation_id = ? AND finished IS NULL", (row[0],))
            cur.execute("DELETE FROM automations WHERE id = ?", (row[0],))

    def firings(self, name: str, limit: int = 20) -> list[FiringRow]:
        auto = self.read(name)
        return [_firing(r) for r in self._read(
            f"SELECT {_FIRING_COLUMNS} FROM automation_firings WHERE automation_id = ? ORDER BY seq DESC LIMIT ?",
            (auto.id.bytes, limit),
        )]  # fmt: skip

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(self, events: EventStore, now: float | None = None, most: int = 1000) -> int:
        """Run every enabled automation's trigger over the events after its cursor (and its
        proactive windows' clock), storing state, cursor and firings together. Returns how
        many firings were recorded."""
        now = time.time() if now is None else now
        made = 0
        for ident, trigger_json, state_json, cursor_text in self._read(
            "SELECT id, trigger, state, cursor FROM automations WHERE enabled = 1"
        ):
            trigger = trigger_from_dict(json.loads(trigger_json))
            state = new_state(trigger, json.loads(state_json))
            found, cursor = events.after(Cursor.parse(cursor_text), most)
            outcomes: list[Any] = []
            for event in found:
                outcomes.extend(evaluate_any(trigger, state, event))
            if is_proactive(trigger):
                outcomes.extend(tick_any(trigger, state, now))
            if not found and not outcomes and cursor.text() == cursor_text and state.to_json() == (
                new_state(trigger, json.loads(state_json)).to_json()
            ):
                continue  # nothing new, and no window opened or moved: no write
            automation_id = UUID(bytes=ident)
            with self._write() as cur:
                current = cur.execute("SELECT cursor FROM automations WHERE id = ?", (ident,)).fetchone()
                if current is None or current[0] != cursor_text:
                    continue  # another loop evaluated it meanwhile: its result stands
                cur.execute("UPDATE automations SET state = ?, cursor = ? WHERE id = ?",
                            (json.dumps(state.to_json()), cursor.text(), ident))  # fmt: skip
                for outcome in outcomes:
                    kind = "firing" if isinstance(outcome, Firing) else "resolution"
                    key = firing_key(automation_id, outcome) + ("" if kind == "firing" else ":resolved")
                    cur.execute(
                        "INSERT INTO automation_firings (automation_id, key, kind, body, created, next_action, next_attempt, "
                        "finished) VALUES (?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (key) DO NOTHING",
                        (ident, key, kind, json.dumps({**outcome.to_dict(), "events": _events_of(found, outcome)}), now,
                         now, None if kind == "firing" else now),
                    )  # fmt: skip
                    made += cur.rowcount
        return made

    def explain(self, name: str, limit: int = 10) -> dict[str, Any]:
        """Why the automation did or did not fire: per bucket (each `for_each` key), the
        events counted in its open window against the threshold, when that window started,
        whether it waits for an `after` event; and its last firings with the events that made
        each and the reason. What `headwater automation explain` prints."""
        auto = self.read(name)
        parsed = trigger_from_dict(auto.trigger)
        rows = self._read("SELECT state, cursor FROM automations WHERE id = ?", (auto.id.bytes,))
        if isinstance(parsed, DeadlineTrigger):  # per bucket: the events counted toward the next deadline
            deadline_state = DeadlineState.from_json(json.loads(rows[0][0]))
            return {"name": auto.name, "enabled": auto.enabled, "posture": f"deadline {parsed.cron} {parsed.timezone}",
                    "expect": sorted(parsed.expect.expect), "threshold": parsed.threshold, "within": 0.0,
                    "evaluated_to": rows[0][1],
                    "buckets": [{"bucket": key, "counted": len(seen), "threshold": parsed.threshold,
                                 "window_start": None, "window_end": None, "waiting_for_after_event": False,
                                 "events": [i for i, _ in seen], "last_fired": None}
                                for key, seen in sorted(deadline_state.seen.items())],
                    "firings": self._firing_summaries(name, limit)}  # fmt: skip
        if not isinstance(parsed, EventTrigger):  # a compound: what of it fired, and when
            composite = new_state(parsed, json.loads(rows[0][0]))
            return {"name": auto.name, "enabled": auto.enabled, "posture": parsed.type, "expect": [],
                    "threshold": len(parsed.triggers), "within": parsed.within, "evaluated_to": rows[0][1],
                    "buckets": [{"bucket": "compound", "counted": len(composite.fired),  # type: ignore[union-attr]
                                 "threshold": len(parsed.triggers), "window_start": None, "window_end": None,
                                 "waiting_for_after_event": False, "events": [], "last_fired": None}],
                    "firings": self._firing_summaries(name, limit)}  # fmt: skip
        trigger = parsed
        state = TriggerState.from_json(json.loads(rows[0][0]) or None)
        buckets = []
        for key, bucket in sorted(state.buckets.items()):
            waiting = bool(trigger.after) and not bucket.armed and bucket.window_start is None
            buckets.append({
                "bucket": key, "counted": bucket.count, "threshold": trigger.threshold,
                "window_start": bucket.window_start,
                "window_end": None if bucket.window_start is None or not trigger.within else bucket.window_start + trigger.within,
                "waiting_for_after_event": waiting, "events": [i for i, _ in bucket.events],
                "last_fired": bucket.last_fired,
            })  # fmt: skip
        firings = self._firing_summaries(name, limit)
        return {"name": auto.name, "enabled": auto.enabled, "posture": trigger.posture, "expect": sorted(trigger.expect),
                "threshold": trigger.threshold, "within": trigger.within, "evaluated_to": rows[0][1],
                "buckets": buckets, "firings": firings}  # fmt: skip

    def _firing_summaries(self, name: str, limit: int) -> list[dict[str, Any]]:
        return [{"kind": f.kind, "created": f.created, "reason": f.body.get("reason"),
                 "window": [f.body.get("window_start"), f.body.get("window_end")],
                 "events": [e.get("event") for e in f.body.get("events") or []],
                 "actions_done": f.next_action, "finished": f.finished, "error": f.error}
                for f in self.firings(name, limit)]  # fmt: skip

    # -- a dry run ---------------------------------------------------------------------------

    @staticmethod
    def dry_run(trigger: dict[str, Any], events: EventStore, since: float, now: float | None = None,
                most: int = DRY_RUN_EVENTS) -> tuple[list[Any], int]:  # fmt: skip
        """What `trigger` would have done over the events stored since `since`: its firings
        and resolutions in order, and how many events it read. Nothing is written, no action
        runs: this is how a new automation is tried before it is enabled."""
        parsed = trigger_from_dict(trigger)
        now = time.time() if now is None else now
        found = sorted(events.recent(since, most), key=lambda e: e.occurred)
        state = new_state(parsed, None)
        outcomes: list[Any] = []
        for event in found:
            if is_proactive(parsed):
                outcomes.extend(tick_any(parsed, state, event.occurred))
            outcomes.extend(evaluate_any(parsed, state, event))
        if is_proactive(parsed):
            outcomes.extend(tick_any(parsed, state, now))
        return outcomes, len(found)

    # -- the outbox --------------------------------------------------------------------------

    def due(self, now: float | None = None, lease: float = 60.0) -> list[tuple[FiringRow, Automation]]:
        """Firings with actions left and due, claimed for `lease` seconds (one runner at a time)."""
        now = time.time() if now is None else now
        with self._write() as cur:
            rows = cur.execute(
                f"SELECT {_FIRING_COLUMNS} FROM automation_firings WHERE finished IS NULL AND next_attempt <= ? "
                "ORDER BY seq LIMIT 50", (now,),
            ).fetchall()  # fmt: skip
            claimed = []
            for row in rows:
                cur.execute("UPDATE automation_firings SET next_attempt = ? WHERE seq = ?", (now + lease, row[0]))
                auto = cur.execute(f"SELECT {_COLUMNS} FROM automations WHERE id = ?", (row[1],)).fetchone()
                if auto is not None:
                    claimed.append((_firing(row), _automation(auto)))
            return claimed

    def release_claims(self, now: float | None = None) -> int:
        """Make every unfinished firing due now: for a process that alone runs this home's
        automations (a standalone server), at its start. A claim left by a predecessor that
        died mid-action would otherwise hold its actions for the rest of the lease; a retry
        waiting out its backoff is tried at once. Returns how many were released."""
        now = time.time() if now is None else now
        with self._write() as cur:
            return cur.execute(
                "UPDATE automation_firings SET next_attempt = ? WHERE finished IS NULL AND next_attempt > ?", (now, now),
            ).rowcount  # fmt: skip

    def action_done(self, seq: int, index: int, total: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._write() as cur:
            cur.execute(
                "UPDATE automation_firings SET next_action = ?, attempts = 0, next_attempt = ?, finished = ?, error = NULL "
                "WHERE seq = ? AND next_action = ?",
                (index + 1, now, now if index + 1 >= total else None, seq, index),
            )  # fmt: skip

    def action_failed(self, seq: int, attempts: int, error: str, now: float | None = None) -> None:
        """Retry later with backoff; after `MAX_ATTEMPTS`, give up on the firing (kept, with why)."""
        now = time.time() if now is None else now
        gave_up = attempts + 1 >= MAX_ATTEMPTS
        with self._write() as cur:
            cur.execute(
                "UPDATE automation_firings SET attempts = ?, error = ?, next_attempt = ?, finished = ? WHERE seq = ?",
                (attempts + 1, error[:2000], now + min(RETRY_MOST, RETRY_FIRST * 2**attempts), now if gave_up else None, seq),
            )  # fmt: skip


def _events_of(found: list[Event], outcome: Any) -> list[dict[str, Any]]:
    """The events an outcome counted, as templates see them (`{{ event.payload.rows }}`)."""
    wanted = set(outcome.events)
    return [
        {"id": str(e.id), "event": e.event, "occurred": e.occurred, "resource": e.resource, "related": e.related,
         "payload": e.payload}
        for e in found if str(e.id) in wanted
    ]  # fmt: skip
