"""Schedules in the database: their rows, the runs their ticks become, and the policies
that decide what happens around those runs (schema v10). Functions take the cursor of a
transaction the caller holds (`DeployStore`), so a redeploy's schedule change, a scheduler
pass or a claim is one transaction.

- **Exactly one run per tick.** A run made from a tick has the idempotency key
  `schedule:<content key>:<tick, UTC ISO>`; the unique index on (deployment, key) admits one,
  whoever inserts it (`INSERT ... ON CONFLICT DO NOTHING`): two scheduler loops, a restart, a
  redeploy of the same content. The content key hashes when and with what a schedule runs,
  not its slug, active flag or policies.
- **A redeploy never deletes runs.** `replace_schedules` keeps a schedule whose content is
  unchanged (same row, same runs; its slug, active flag and policies updated), and marks a
  changed or dropped one superseded: the row stays, and its runs still waiting end CANCELLED
  named "Superseded", with the reason.
- **The scheduler pass** (`materialize`) turns each live, active schedule of an unpaused
  deployment into runs up to `ahead` seconds ahead. Ticks it finds in the past are those it
  missed while nothing ran it (downtime): its catch-up policy picks which become runs: `all`
  (every one no older than `max_lateness`), `latest` (the most recent), `skip` (none).
- **Late.** A deployment run still waiting `late_after` seconds after its time is moved to
  the named Scheduled state "Late" (it still starts when a worker takes it), so it can be seen.
- **Overlap** (`overlap`, decided when a tick's run is due and a run of its deployment is still
  going): `allow_all` starts it; `skip` ends it CANCELLED ("Skipped"); `buffer_one` keeps one
  waiting and skips any later; `cancel_other` cancels the running one and starts it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

from . import rules
from .control_store import CancelOutcome, _move, cancel_in
from .schedules import Schedule, content_key, schedule_from_dict, ticks

#: How far ahead the scheduler makes runs (it runs every second or so: a run exists, and
#: shows in listings, well before it is due).
SCHEDULE_AHEAD = 60.0
#: Schedules extended in one pass at most (the rest in the next passes, a second apart).
SCHEDULES_PER_PASS = 100
#: A deployment run still waiting this long after its time is marked Late.
LATE_AFTER = 15.0
_GOING = ("PENDING", "RUNNING", "PAUSED", "CANCELLING")


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    id: int
    deployment_id: UUID
    content_key: str
    slug: str | None
    spec: dict[str, Any]
    active: bool
    created: float
    superseded: float | None
    scheduled_until: float | None


_COLUMNS = "id, deployment_id, content_key, slug, spec, active, created, superseded, scheduled_until"


def _info(row: Any) -> ScheduleInfo:
    return ScheduleInfo(row[0], UUID(bytes=row[1]), row[2], row[3], json.loads(row[4]), bool(row[5]), row[6], row[7], row[8])


def list_schedules(cur: sqlite3.Cursor, deployment_id: UUID | None = None, *, superseded: bool = False) -> list[ScheduleInfo]:
    where = [] if superseded else ["superseded IS NULL"]
    args: list[Any] = []
    if deployment_id is not None:
        where.append("deployment_id = ?")
        args.append(deployment_id.bytes)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return [_info(r) for r in cur.execute(f"SELECT {_COLUMNS} FROM deployment_schedules {clause} ORDER BY id", args)]


def add_schedule(cur: sqlite3.Cursor, deployment_id: UUID, spec: dict[str, Any], now: float) -> ScheduleInfo:
    """Add one schedule (its content must not be one the deployment has live already)."""
    schedule = schedule_from_dict(spec)  # refuses a bad one, naming what is wrong
    key = content_key(schedule)
    found = cur.execute(
        f"SELECT {_COLUMNS} FROM deployment_schedules WHERE deployment_id = ? AND content_key = ? AND superseded IS NULL",
        (deployment_id.bytes, key),
    ).fetchone()
    if found is not None:
        cur.execute("UPDATE deployment_schedules SET spec = ?, slug = ?, active = ? WHERE id = ?",
                    (json.dumps(spec), schedule.slug, int(schedule.active), found[0]))  # fmt: skip
        return _info(cur.execute(f"SELECT {_COLUMNS} FROM deployment_schedules WHERE id = ?", (found[0],)).fetchone())
    ident = cur.execute(
        "INSERT INTO deployment_schedules (deployment_id, content_key, slug, spec, active, created) VALUES (?, ?, ?, ?, ?, ?)",
        (deployment_id.bytes, key, schedule.slug, json.dumps(spec), int(schedule.active), now),
    ).lastrowid
    return _info(cur.execute(f"SELECT {_COLUMNS} FROM deployment_schedules WHERE id = ?", (ident,)).fetchone())


def replace_schedules(cur: sqlite3.Cursor, deployment_id: UUID, specs: list[dict[str, Any]], now: float) -> int:
    """A deploy's schedules replace the deployment's live ones (module docstring); returns
    how many waiting runs were superseded."""
    wanted = {content_key(schedule_from_dict(spec)): spec for spec in specs}
    superseded = 0
    for live in list_schedules(cur, deployment_id):
        if live.content_key not in wanted:
            superseded += supersede(cur, live.id, now, "the deployment's schedules changed (redeploy)")
    for spec in wanted.values():
        add_schedule(cur, deployment_id, spec, now)
    return superseded


def supersede(cur: sqlite3.Cursor, schedule_id: int, now: float, why: str) -> int:
    """Retire a schedule: the row stays, its waiting runs end CANCELLED "Superseded"."""
    cur.execute("UPDATE deployment_schedules SET superseded = ? WHERE id = ? AND superseded IS NULL", (now, schedule_id))
    waiting = [UUID(bytes=r[0]) for r in cur.execute(
        "SELECT f.id FROM flow_runs f WHERE f.schedule_id = ? AND f.state_type = 'SCHEDULED' "
        "AND NOT EXISTS (SELECT 1 FROM run_claims c WHERE c.flow_run_id = f.id)", (schedule_id,),
    )]  # fmt: skip
    for run_id in waiting:
        _move(cur, "flow", run_id, rules.CANCELLED, "Superseded", f"superseded: {why}", now)
    return len(waiting)


def set_active(cur: sqlite3.Cursor, schedule_id: int, active: bool) -> None:
    cur.execute("UPDATE deployment_schedules SET active = ? WHERE id = ? AND superseded IS NULL", (int(active), schedule_id))


# -- the scheduler pass ------------------------------------------------------------------


def materialize(cur: sqlite3.Cursor, now: float, ahead: float = SCHEDULE_AHEAD, most: int = SCHEDULES_PER_PASS) -> int:
    """Make the runs of every live, active schedule of an unpaused deployment up to `ahead`
    seconds from `now`, catching up on missed ticks by each schedule's policy, the `most`
    whose runs reach least far first (a pass holds the database's write lock: it stays
    short). Returns how many runs were made (a tick another loop made already counts nothing)."""
    made = 0
    # A schedule is extended only once half its horizon is used up: a pass a second then
    # touches a thirtieth of the schedules, not all of them (1,000 one-minute crons: 320 ms
    # of CPU a pass when every pass extended every schedule).
    rows = cur.execute(
        "SELECT s.id, s.deployment_id, s.content_key, s.spec, s.created, s.scheduled_until, d.parameters, d.tags, "
        "d.work_pool, d.flow_name FROM deployment_schedules s JOIN deployments d ON d.id = s.deployment_id "
        "WHERE s.superseded IS NULL AND s.active = 1 AND d.paused = 0 "
        "AND (s.scheduled_until IS NULL OR s.scheduled_until < ?) ORDER BY s.scheduled_until LIMIT ?",
        (now + ahead / 2, most),
    ).fetchall()
    until = now + ahead
    for sid, dep, key, spec, created, scheduled_until, params, tags, pool, flow_name in rows:
        schedule = schedule_from_dict(json.loads(spec))
        start = scheduled_until if scheduled_until is not None else created
        if start >= until:
            continue
        missed = ticks(schedule, _utc(start), _utc(now))
        coming = ticks(schedule, _utc(max(start, now)), _utc(until))
        chosen = _catch_up(schedule, missed, now) + coming
        merged = {**json.loads(params), **schedule.parameters}
        for tick in chosen:
            made += _insert_tick_run(cur, sid, dep, key, tick, merged, json.loads(tags), pool, flow_name, now)
        cur.execute("UPDATE deployment_schedules SET scheduled_until = ? WHERE id = ?", (until, sid))
    return made


def _catch_up(schedule: Schedule, missed: list[datetime], now: float) -> list[datetime]:
    if not missed or schedule.catchup == "skip":
        return []
    if schedule.max_lateness is not None:
        oldest = now - schedule.max_lateness.total_seconds()
        missed = [t for t in missed if t.timestamp() >= oldest]
    if schedule.catchup == "latest":
        return missed[-1:]
    return missed


def _insert_tick_run(
    cur: sqlite3.Cursor, schedule_id: int, deployment: bytes, key: str, tick: datetime, parameters: dict[str, Any],
    tags: list[str], pool: str | None, flow_name: str, now: float,
) -> int:
    run_id = uuid4()
    stamp = tick.astimezone(timezone.utc).isoformat()
    cur.execute(
        "INSERT INTO flow_runs (id, name, flow_name, parameters, tags, created, deployment_id, work_pool, "
        "idempotency_key, scheduled_time, schedule_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (deployment_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
        (run_id.bytes, f"scheduled-{stamp[:19]}", flow_name, json.dumps(parameters), json.dumps(tags), now, deployment,
         pool, f"schedule:{key}:{stamp}", tick.timestamp(), schedule_id),
    )  # fmt: skip
    if cur.rowcount == 0:
        return 0
    _move(cur, "flow", run_id, rules.SCHEDULED, "Scheduled", f"scheduled for {stamp}", now)
    return 1


def mark_late(cur: sqlite3.Cursor, now: float, late_after: float = LATE_AFTER) -> list[UUID]:
    """Deployment runs still waiting `late_after` seconds past their time become "Late"."""
    late = [UUID(bytes=r[0]) for r in cur.execute(
        "SELECT f.id FROM flow_runs f WHERE f.deployment_id IS NOT NULL AND f.state_type = 'SCHEDULED' "
        "AND f.scheduled_time < ? AND f.state_name = 'Scheduled' "
        "AND NOT EXISTS (SELECT 1 FROM run_claims c WHERE c.flow_run_id = f.id)", (now - late_after,),
    )]  # fmt: skip
    for run_id in late:
        _move(cur, "flow", run_id, rules.SCHEDULED, "Late", f"not started within {late_after:g} s of its scheduled time", now)
    return late


# -- overlap, at claim time --------------------------------------------------------------


class OverlapPolicies:
    """The overlap decisions of one claim pass (`DeployStore.assign`): schedules read once,
    and which schedules have a run waiting already (for `buffer_one`)."""

    def __init__(self, cur: sqlite3.Cursor, now: float) -> None:
        self._cur, self._now = cur, now
        self._specs: dict[int, Schedule | None] = {}
        self._buffered: set[int] = set()
        self.cancelled: list[CancelOutcome] = []

    def admit(self, run: bytes, deployment: bytes, schedule_id: int | None) -> bool:
        """Whether this due run may be claimed now (it may instead wait, or end Skipped)."""
        if schedule_id is None:
            return True
        schedule = self._schedule(schedule_id)
        if schedule is None or schedule.overlap == "allow_all":
            return True
        going = [r[0] for r in self._cur.execute(
            f"SELECT id FROM flow_runs WHERE deployment_id = ? AND id != ? AND state_type IN {_GOING}", (deployment, run),
        )]  # fmt: skip
        if not going:
            return True
        if schedule.overlap == "cancel_other":
            for other in going:
                self.cancelled.append(cancel_in(self._cur, UUID(bytes=other), by="overlap policy cancel_other", now=self._now))
            return True
        if schedule.overlap == "buffer_one" and schedule_id not in self._buffered:
            self._buffered.add(schedule_id)
            return False  # waits for the running one to end
        _move(self._cur, "flow", UUID(bytes=run), rules.CANCELLED, "Skipped",
              f"skipped: run {UUID(bytes=going[0])} of this deployment is still going (overlap policy {schedule.overlap})",
              self._now)  # fmt: skip
        return False

    def _schedule(self, schedule_id: int) -> Schedule | None:
        if schedule_id not in self._specs:
            row = self._cur.execute("SELECT spec FROM deployment_schedules WHERE id = ?", (schedule_id,)).fetchone()
            self._specs[schedule_id] = None if row is None else schedule_from_dict(json.loads(row[0]))
        return self._specs[schedule_id]


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
