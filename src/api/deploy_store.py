"""Deployments, work pools, workers and claims in SQLite (schema v9).

A deployment is a row naming a flow's entrypoint and where its code comes from; running one
creates a flow run row here, SCHEDULED and due at its time, in the same transaction that
checks its parameters against the deployment's stored JSON schema and its idempotency key
against the unique index (`create_run`). The flow's own process adopts that run later and
records the rest of its life as any flow does.

A queued run starts by being claimed: `assign` picks due runs for one worker, within the
worker's own limit, its pool's and each deployment's, and writes a claim (a lease with a
fencing token) per run; `start` turns a claim into a start only while its lease and token
still hold, moving the run to PENDING in the same transaction, so two workers can never
both start a run. Limits count live claims, so no counter can drift. Workers renew their
claims with their heartbeat; `sweep` gives back a claim whose worker died before starting
its run, and ends CRASHED the started runs of a worker that stopped heartbeating.
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
from .control_store import _move
from .errors import (
    ClaimLost,
    DeploymentNotFound,
    InvalidParameters,
    TransitionRejected,
    WorkPoolExists,
    WorkPoolNotFound,
)
from . import schedule_runs
from .control_store import CancelOutcome
from .locked_store import LockedStore
from .parameter_check import check_parameters
from .schedule_runs import ScheduleInfo

COLLISION_STRATEGIES = ("enqueue", "cancel_new")
#: Seconds a claim (and a worker's liveness) lasts without a heartbeat renewing it.
CLAIM_LEASE = 10.0
_LIVE_RUN = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")
_DEPLOYMENT_COLUMNS = (
    "id, name, flow_name, entrypoint, source, parameters, parameter_schema, tags, work_pool, "
    "description, version, paused, concurrency_limit, collision_strategy, created, updated"
)


@dataclass(frozen=True, slots=True)
class WorkPool:
    name: str
    concurrency_limit: int | None
    paused: bool
    description: str | None
    created: float


@dataclass(frozen=True, slots=True)
class Deployment:
    """A flow the service knows: `name` is `flow-name/deployment-name`; `source` where its
    code comes from (`{"kind": "local", "path": ...}` or `{"kind": "git", ...}`)."""

    id: UUID
    name: str
    flow_name: str
    entrypoint: str
    source: dict[str, Any]
    parameters: dict[str, Any]
    parameter_schema: dict[str, Any]
    tags: tuple[str, ...]
    work_pool: str | None
    description: str | None
    version: str | None
    paused: bool
    concurrency_limit: int | None
    collision_strategy: str
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """What `upsert_deployment` stores (the service fills in ids and times)."""

    name: str
    flow_name: str
    entrypoint: str
    source: dict[str, Any]
    parameters: dict[str, Any]
    parameter_schema: dict[str, Any]
    tags: tuple[str, ...] = ()
    work_pool: str | None = None
    description: str | None = None
    version: str | None = None
    paused: bool = False
    concurrency_limit: int | None = None
    collision_strategy: str = "enqueue"
    #: The deployment's schedules as dicts (`api/schedules.py`); None leaves them as they are.
    schedules: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class CreatedRun:
    """A deployment's run: `created` False when the idempotency key named an existing one."""

    flow_run_id: UUID
    name: str
    created: bool


@dataclass(frozen=True, slots=True)
class Assignment:
    """A claimed run a worker is to start: everything its subprocess needs to run it."""

    flow_run_id: UUID
    token: int
    run_name: str
    parameters: dict[str, Any]
    tags: tuple[str, ...]
    parent_flow_run_id: UUID | None
    parent_task_run_id: UUID | None
    deployment: Deployment


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    name: str
    pool: str | None
    deployments: tuple[UUID, ...]
    host: str | None
    pid: int | None
    limit: int | None
    started: float
    last_heartbeat: float
    stopped: float | None
    running: tuple[UUID, ...]


@dataclass(frozen=True, slots=True)
class SweepResult:
    returned: tuple[UUID, ...]  # claimed, never started: back in the queue
    crashed: tuple[UUID, ...]  # started by a worker that stopped heartbeating


class DeployStore(LockedStore):
    """See the module docstring; thread-safe (one connection, one lock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Runs `cancel_other` overlap policies cancelled in claim passes, for the service to
        #: tell their processes (it takes them after each pass).
        self.overlap_cancels: list[CancelOutcome] = []

    # -- work pools ------------------------------------------------------------------------

    def create_pool(
        self, name: str, *, concurrency_limit: int | None = None, description: str | None = None,
        exist_ok: bool = False, now: float | None = None,
    ) -> WorkPool:
        with self._write() as cur:
            row = cur.execute(f"SELECT {_POOL_COLUMNS} FROM work_pools WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if exist_ok:
                    return _pool(row)
                raise WorkPoolExists(f"work pool {name!r} exists already; see it with `headwater work-pool inspect {name}`")
            cur.execute(
                "INSERT INTO work_pools (name, concurrency_limit, description, created) VALUES (?, ?, ?, ?)",
                (name, concurrency_limit, description, time.time() if now is None else now),
            )
            return _pool(cur.execute(f"SELECT {_POOL_COLUMNS} FROM work_pools WHERE name = ?", (name,)).fetchone())

    def read_pool(self, name: str) -> WorkPool:
        rows = self._read(f"SELECT {_POOL_COLUMNS} FROM work_pools WHERE name = ?", (name,))
        if not rows:
            raise WorkPoolNotFound(_no_pool(name))
        return _pool(rows[0])

    def list_pools(self) -> list[WorkPool]:
        return [_pool(r) for r in self._read(f"SELECT {_POOL_COLUMNS} FROM work_pools ORDER BY name")]

    def update_pool(
        self, name: str, *, paused: bool | None = None, concurrency_limit: int | None | bool = False,
    ) -> WorkPool:
        """Pause or resume a pool, or set its limit (`concurrency_limit=None` removes it;
        False leaves it as it is)."""
        with self._write() as cur:
            if cur.execute("SELECT 1 FROM work_pools WHERE name = ?", (name,)).fetchone() is None:
                raise WorkPoolNotFound(_no_pool(name))
            if paused is not None:
                cur.execute("UPDATE work_pools SET paused = ? WHERE name = ?", (int(paused), name))
            if concurrency_limit is not False:
                cur.execute("UPDATE work_pools SET concurrency_limit = ? WHERE name = ?", (concurrency_limit, name))
            return _pool(cur.execute(f"SELECT {_POOL_COLUMNS} FROM work_pools WHERE name = ?", (name,)).fetchone())

    def delete_pool(self, name: str) -> None:
        """Delete an unused pool; one that deployments still name is refused, naming them."""
        with self._write() as cur:
            if cur.execute("SELECT 1 FROM work_pools WHERE name = ?", (name,)).fetchone() is None:
                raise WorkPoolNotFound(_no_pool(name))
            users = [r[0] for r in cur.execute("SELECT name FROM deployments WHERE work_pool = ? ORDER BY name", (name,))]
            if users:
                raise TransitionRejected(
                    f"work pool {name!r} is used by {len(users)} deployment(s) ({', '.join(users[:5])}); "
                    f"delete them or deploy them to another pool first"
                )
            cur.execute("DELETE FROM work_pools WHERE name = ?", (name,))

    # -- deployments -----------------------------------------------------------------------

    def upsert_deployment(self, spec: DeploymentSpec, now: float | None = None) -> Deployment:
        """Create the deployment `spec.name`, or update it in place (its id and runs stay)."""
        now = time.time() if now is None else now
        if spec.collision_strategy not in COLLISION_STRATEGIES:
            raise InvalidParameters(
                f"collision strategy {spec.collision_strategy!r} is not one of {', '.join(COLLISION_STRATEGIES)}"
            )
        if spec.concurrency_limit is not None and spec.concurrency_limit < 1:
            raise InvalidParameters(f"a deployment's concurrency limit is at least 1, not {spec.concurrency_limit}")
        problems = check_parameters(spec.parameter_schema, spec.parameters, spec.flow_name, partial=True)
        if problems:
            raise InvalidParameters(f"deployment {spec.name!r} default parameters are invalid: " + "; ".join(problems))
        with self._write() as cur:
            if spec.work_pool is not None and cur.execute(
                "SELECT 1 FROM work_pools WHERE name = ?", (spec.work_pool,)
            ).fetchone() is None:
                raise WorkPoolNotFound(_no_pool(spec.work_pool))
            found = cur.execute("SELECT id FROM deployments WHERE name = ?", (spec.name,)).fetchone()
            values = (
                spec.flow_name, spec.entrypoint, json.dumps(spec.source), json.dumps(spec.parameters),
                json.dumps(spec.parameter_schema), json.dumps(list(spec.tags)), spec.work_pool,
                spec.description, spec.version, int(spec.paused), spec.concurrency_limit,
                spec.collision_strategy,
            )
            if found is None:
                ident = uuid.uuid4().bytes
                cur.execute(
                    f"INSERT INTO deployments ({_DEPLOYMENT_COLUMNS}) VALUES ({', '.join('?' * 16)})",
                    (ident, spec.name, *values, now, now),
                )
            else:
                ident = found[0]
                cur.execute(
                    "UPDATE deployments SET flow_name = ?, entrypoint = ?, source = ?, parameters = ?, "
                    "parameter_schema = ?, tags = ?, work_pool = ?, description = ?, version = ?, "
                    "paused = ?, concurrency_limit = ?, collision_strategy = ?, updated = ? WHERE id = ?",
                    (*values, now, ident),
                )
            if spec.schedules is not None:
                for schedule in spec.schedules:
                    _check_schedule_parameters(spec.parameter_schema, spec.parameters, schedule, spec.flow_name)
                schedule_runs.replace_schedules(cur, UUID(bytes=ident), list(spec.schedules), now)
            return _deployment(cur.execute(f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?", (ident,)).fetchone())

    # -- schedules (`schedule_runs.py`) -----------------------------------------------------

    def list_schedules(self, ident: str | UUID | None = None) -> list[ScheduleInfo]:
        with self._lock:
            cur = self._conn.cursor()
            dep = None if ident is None else _read_deployment(cur, ident).id
            return schedule_runs.list_schedules(cur, dep)

    def add_schedule(self, ident: str | UUID, spec: dict[str, Any], now: float | None = None) -> ScheduleInfo:
        with self._write() as cur:
            dep = _read_deployment(cur, ident)
            _check_schedule_parameters(dep.parameter_schema, dep.parameters, spec, dep.flow_name)
            return schedule_runs.add_schedule(cur, dep.id, spec, time.time() if now is None else now)

    def set_schedule_active(self, schedule_id: int, active: bool) -> None:
        with self._write() as cur:
            schedule_runs.set_active(cur, schedule_id, active)

    def delete_schedule(self, schedule_id: int, now: float | None = None) -> int:
        """Retire a schedule (kept, superseded); returns how many waiting runs it ended."""
        with self._write() as cur:
            return schedule_runs.supersede(cur, schedule_id, time.time() if now is None else now, "its schedule was deleted")

    def scheduler_pass(self, now: float | None = None) -> tuple[int, int]:
        """Make due and coming runs of every schedule, and mark late runs: (made, marked late)."""
        now = time.time() if now is None else now
        with self._write() as cur:
            made = schedule_runs.materialize(cur, now)
            late = schedule_runs.mark_late(cur, now)
            return made, len(late)

    def read_deployment(self, ident: str | UUID) -> Deployment:
        """By name (`flow-name/deployment-name`) or id."""
        with self._lock:
            return _read_deployment(self._conn.cursor(), ident)

    def list_deployments(self, work_pool: str | None = None) -> list[Deployment]:
        where, args = ("WHERE work_pool = ?", (work_pool,)) if work_pool else ("", ())
        return [_deployment(r) for r in self._read(f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments {where} ORDER BY name", args)]

    def set_deployment_paused(self, ident: str | UUID, paused: bool) -> Deployment:
        with self._write() as cur:
            dep = _read_deployment(cur, ident)
            cur.execute("UPDATE deployments SET paused = ?, updated = ? WHERE id = ?", (int(paused), time.time(), dep.id.bytes))
            return _read_deployment(cur, dep.id)

    def delete_deployment(self, ident: str | UUID, now: float | None = None) -> list[UUID]:
        """Delete a deployment; its runs still queued end CANCELLED (named in their state's
        message), never deleted silently. Returns those runs."""
        now = time.time() if now is None else now
        with self._write() as cur:
            dep = _read_deployment(cur, ident)
            queued = [UUID(bytes=r[0]) for r in cur.execute(
                "SELECT id FROM flow_runs WHERE deployment_id = ? AND state_type = 'SCHEDULED'", (dep.id.bytes,)
            )]  # fmt: skip
            for run_id in queued:
                _move(cur, "flow", run_id, rules.CANCELLED, "Cancelled", f"deployment {dep.name!r} was deleted", now)
                cur.execute("DELETE FROM run_claims WHERE flow_run_id = ?", (run_id.bytes,))
            cur.execute("DELETE FROM deployments WHERE id = ?", (dep.id.bytes,))
            return queued

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self, ident: str | UUID, *, parameters: dict[str, Any] | None = None, idempotency_key: str | None = None,
        scheduled_time: float | None = None, tags: Sequence[str] = (), name: str,
        parent_flow_run_id: UUID | None = None, parent_task_run_id: UUID | None = None, now: float | None = None,
    ) -> CreatedRun:
        """A SCHEDULED run of the deployment, due at `scheduled_time` (now by default), its
        parameters the deployment's overridden by `parameters` and checked against the
        stored schema (`InvalidParameters` names each bad field). The same idempotency key
        for the same deployment returns the run it created first."""
        now = time.time() if now is None else now
        with self._write() as cur:
            dep = _read_deployment(cur, ident)
            if idempotency_key is not None:
                found = cur.execute(
                    "SELECT id, name FROM flow_runs WHERE deployment_id = ? AND idempotency_key = ?",
                    (dep.id.bytes, idempotency_key),
                ).fetchone()
                if found is not None:
                    return CreatedRun(UUID(bytes=found[0]), found[1], False)
            merged = {**dep.parameters, **(parameters or {})}
            problems = check_parameters(dep.parameter_schema, merged, dep.flow_name)
            if problems:
                raise InvalidParameters(f"deployment {dep.name!r}: parameters are invalid: " + "; ".join(problems))
            run_id = uuid.uuid4()
            all_tags = list(dict.fromkeys([*dep.tags, *tags]))
            cur.execute(
                "INSERT INTO flow_runs (id, name, flow_name, parameters, parent_flow_run_id, parent_task_run_id, "
                "tags, created, deployment_id, work_pool, idempotency_key, scheduled_time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id.bytes, name, dep.flow_name, json.dumps(merged),
                    None if parent_flow_run_id is None else parent_flow_run_id.bytes,
                    None if parent_task_run_id is None else parent_task_run_id.bytes,
                    json.dumps(all_tags), now, dep.id.bytes, dep.work_pool, idempotency_key,
                    now if scheduled_time is None else scheduled_time,
                ),
            )  # fmt: skip
            _move(cur, "flow", run_id, rules.SCHEDULED, "Scheduled", f"run of deployment {dep.name!r}", now)
            return CreatedRun(run_id, name, True)

    def next_due(self, after: float | None = None) -> float | None:
        """When the earliest queued, unclaimed run is due; with `after`, the earliest due
        later than that (the timer's next wake: runs due already wait on limits, and the
        sweeper's every turn offers them again)."""
        later, args = ("AND scheduled_time > ?", (after,)) if after is not None else ("", ())
        rows = self._read(
            "SELECT min(scheduled_time) FROM flow_runs f WHERE deployment_id IS NOT NULL AND state_type = 'SCHEDULED' "
            f"{later} AND NOT EXISTS (SELECT 1 FROM run_claims c WHERE c.flow_run_id = f.id)",
            args,
        )
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    # -- workers and claims ----------------------------------------------------------------

    def register_worker(
        self, name: str, *, pool: str | None, deployments: Sequence[UUID] = (), host: str | None = None,
        pid: int | None = None, limit: int | None = None, lease: float = CLAIM_LEASE, now: float | None = None,
    ) -> None:
        """A worker (re)connected: its row, alive now. A pool it names must exist. `lease`:
        how long its claims last between its heartbeats."""
        now = time.time() if now is None else now
        with self._write() as cur:
            if pool is not None and cur.execute("SELECT 1 FROM work_pools WHERE name = ?", (pool,)).fetchone() is None:
                raise WorkPoolNotFound(_no_pool(pool))
            cur.execute(
                "INSERT INTO workers (name, pool, deployments, host, pid, slot_limit, lease_seconds, started, "
                "last_heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "pool = excluded.pool, deployments = excluded.deployments, host = excluded.host, pid = excluded.pid, "
                "slot_limit = excluded.slot_limit, lease_seconds = excluded.lease_seconds, "
                "last_heartbeat = excluded.last_heartbeat, stopped = NULL",
                (name, pool, json.dumps([str(d) for d in deployments]), host, pid, limit, lease, now, now),
            )

    def heartbeat(self, name: str, *, lease: float = CLAIM_LEASE, now: float | None = None) -> bool:
        """The worker is alive: renew it and every claim it holds. False if the service
        no longer knows it (it was swept as dead: it must not start what it held)."""
        now = time.time() if now is None else now
        with self._write() as cur:
            cur.execute("UPDATE workers SET last_heartbeat = ? WHERE name = ? AND stopped IS NULL", (now, name))
            if cur.rowcount == 0:
                return False
            cur.execute("UPDATE run_claims SET lease_expires = ? WHERE worker = ?", (now + lease, name))
            return True

    def stop_worker(self, name: str, now: float | None = None) -> list[UUID]:
        """A worker said goodbye: its claims not started go back to the queue."""
        now = time.time() if now is None else now
        with self._write() as cur:
            cur.execute("UPDATE workers SET stopped = ? WHERE name = ?", (now, name))
            rows = cur.execute("SELECT flow_run_id FROM run_claims WHERE worker = ? AND started IS NULL", (name,)).fetchall()
            cur.execute("DELETE FROM run_claims WHERE worker = ? AND started IS NULL", (name,))
            return [UUID(bytes=r[0]) for r in rows]

    def list_workers(self) -> list[WorkerInfo]:
        running: dict[str, list[UUID]] = {}
        for worker, run in self._read("SELECT worker, flow_run_id FROM run_claims WHERE started IS NOT NULL ORDER BY started"):
            running.setdefault(worker, []).append(UUID(bytes=run))
        return [
            WorkerInfo(
                name, pool, tuple(UUID(d) for d in json.loads(deps)), host, pid, limit, started, beat, stopped,
                tuple(running.get(name, ())),
            )
            for name, pool, deps, host, pid, limit, started, beat, stopped in self._read(
                "SELECT name, pool, deployments, host, pid, slot_limit, started, last_heartbeat, stopped "
                "FROM workers ORDER BY name"
            )
        ]

    def assign(self, worker: str, *, most: int = 1, lease: float | None = None, now: float | None = None) -> list[Assignment]:
        """Claim up to `most` due runs for `worker`, oldest due first, within its limit, its
        pool's and each run's deployment's. A run whose deployment is at its limit is passed
        over (not waited on), so it never holds up runs that could start; with the
        deployment's collision strategy `cancel_new` it ends CANCELLED instead."""
        now = time.time() if now is None else now
        with self._write() as cur:
            row = cur.execute(
                "SELECT pool, deployments, slot_limit, lease_seconds FROM workers WHERE name = ? AND stopped IS NULL",
                (worker,),
            ).fetchone()
            if row is None:
                return []
            pool, deployments, worker_limit, worker_lease = row
            lease = worker_lease if lease is None else lease
            room = most
            if worker_limit is not None:
                room = min(room, worker_limit - _count(cur, "worker = ?", worker))
            if pool is not None:
                pool_row = cur.execute("SELECT paused, concurrency_limit FROM work_pools WHERE name = ?", (pool,)).fetchone()
                if pool_row is None or pool_row[0]:
                    return []
                if pool_row[1] is not None:
                    room = min(room, pool_row[1] - _count(cur, "pool = ?", pool))
                match, args = "f.work_pool = ?", [pool]
            else:
                ids = [UUID(d).bytes for d in json.loads(deployments)]
                if not ids:
                    return []
                match, args = f"f.work_pool IS NULL AND f.deployment_id IN ({', '.join('?' * len(ids))})", ids
            if room <= 0:
                return []
            candidates = cur.execute(
                "SELECT f.id, f.deployment_id, f.schedule_id FROM flow_runs f WHERE f.deployment_id IS NOT NULL "
                f"AND f.state_type = 'SCHEDULED' AND f.scheduled_time <= ? AND {match} "
                "AND NOT EXISTS (SELECT 1 FROM run_claims c WHERE c.flow_run_id = f.id) "
                "ORDER BY f.scheduled_time, f.seq LIMIT 500",
                (now, *args),
            ).fetchall()
            taken: list[Assignment] = []
            deps: dict[bytes, Deployment] = {}
            overlap = schedule_runs.OverlapPolicies(cur, now)
            for run_bytes, dep_bytes, schedule_id in candidates:
                if not overlap.admit(run_bytes, dep_bytes, schedule_id):
                    continue
                dep = deps.get(dep_bytes)
                if dep is None:
                    dep = deps[dep_bytes] = _read_deployment(cur, UUID(bytes=dep_bytes))
                if dep.concurrency_limit is not None and _count(cur, "deployment_id = ?", dep_bytes) >= dep.concurrency_limit:
                    if dep.collision_strategy == "cancel_new":
                        _move(cur, "flow", UUID(bytes=run_bytes), rules.CANCELLED, "Cancelled",
                              f"deployment {dep.name!r} is at its concurrency limit ({dep.concurrency_limit}) "
                              "and its collision strategy is cancel_new", now)  # fmt: skip
                    continue
                token = cur.execute("UPDATE claim_tokens SET last = last + 1 RETURNING last").fetchone()[0]
                cur.execute(
                    "INSERT INTO run_claims (flow_run_id, deployment_id, pool, worker, token, claimed, lease_expires) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_bytes, dep_bytes, pool, worker, token, now, now + lease),
                )
                taken.append(_assignment(cur, UUID(bytes=run_bytes), int(token), dep))
                if len(taken) >= room:
                    break
            self.overlap_cancels.extend(overlap.cancelled)
            return taken

    def unstarted(self, worker: str) -> list[Assignment]:
        """The claims `worker` holds and has not started (re-sent when its stream reconnects)."""
        with self._write() as cur:
            rows = cur.execute(
                "SELECT flow_run_id, token, deployment_id FROM run_claims WHERE worker = ? AND started IS NULL", (worker,)
            ).fetchall()
            return [_assignment(cur, UUID(bytes=r), int(t), _read_deployment(cur, UUID(bytes=d))) for r, t, d in rows]

    def start(self, flow_run_id: UUID, token: int, worker: str, now: float | None = None) -> None:
        """The worker is about to start the run: allowed only while its claim (this token)
        holds and the run is still SCHEDULED; the run moves to PENDING in the same
        transaction. Raises `ClaimLost` otherwise, and the worker must not start it."""
        now = time.time() if now is None else now
        with self._write() as cur:
            row = cur.execute(
                "SELECT c.token, c.worker, c.lease_expires, c.started, f.state_type FROM run_claims c "
                "JOIN flow_runs f ON f.id = c.flow_run_id WHERE c.flow_run_id = ?",
                (flow_run_id.bytes,),
            ).fetchone()
            if row is None or row[0] != token or row[1] != worker:
                raise ClaimLost(f"flow run {flow_run_id}: worker {worker!r} no longer holds its claim (token {token})")
            if row[2] < now:
                cur.execute("DELETE FROM run_claims WHERE flow_run_id = ?", (flow_run_id.bytes,))
                raise ClaimLost(f"flow run {flow_run_id}: the claim of worker {worker!r} expired before it started")
            if row[3] is not None:
                return  # a retried call: started already, by this claim
            if row[4] != rules.SCHEDULED:
                cur.execute("DELETE FROM run_claims WHERE flow_run_id = ?", (flow_run_id.bytes,))
                raise ClaimLost(f"flow run {flow_run_id} is {row[4]} now, not SCHEDULED: it is not started")
            lease = cur.execute("SELECT lease_seconds FROM workers WHERE name = ?", (worker,)).fetchone()
            cur.execute("UPDATE run_claims SET started = ?, lease_expires = ? WHERE flow_run_id = ?",
                        (now, now + (lease[0] if lease else CLAIM_LEASE), flow_run_id.bytes))  # fmt: skip
            _move(cur, "flow", flow_run_id, rules.PENDING, "Pending", f"started by worker {worker!r}", now)

    def release(self, flow_run_id: UUID, token: int) -> None:
        """The run's process ended (or was never started): its claim is freed."""
        with self._write() as cur:
            cur.execute("DELETE FROM run_claims WHERE flow_run_id = ? AND token = ?", (flow_run_id.bytes, token))

    def started_runs(self, worker: str) -> list[tuple[UUID, str]]:
        """The runs `worker` started and still holds, with their current state types."""
        return [
            (UUID(bytes=r), s) for r, s in self._read(
                "SELECT c.flow_run_id, f.state_type FROM run_claims c JOIN flow_runs f ON f.id = c.flow_run_id "
                "WHERE c.worker = ? AND c.started IS NOT NULL", (worker,),
            )
        ]  # fmt: skip

    def sweep(self, now: float | None = None) -> SweepResult:
        """Claims whose lease passed: not started, the run goes back to the queue; started,
        its worker stopped heartbeating, so the run (if still live) ends CRASHED."""
        now = time.time() if now is None else now
        # Every service sweeps every second, a flow process's embedded one too: a read says
        # whether there is anything to do before taking the database's write lock.
        if not self._read("SELECT 1 FROM run_claims WHERE lease_expires < ? LIMIT 1", (now,)):
            return SweepResult((), ())
        with self._write() as cur:
            expired = cur.execute(
                "SELECT c.flow_run_id, c.worker, c.started, f.state_type FROM run_claims c "
                "JOIN flow_runs f ON f.id = c.flow_run_id WHERE c.lease_expires < ?",
                (now,),
            ).fetchall()
            returned, crashed = [], []
            for run_bytes, worker, started, state in expired:
                run_id = UUID(bytes=run_bytes)
                if started is None:
                    returned.append(run_id)
                elif state in _LIVE_RUN:
                    _move(cur, "flow", run_id, rules.CRASHED, "Crashed",
                          f"worker {worker!r} stopped heartbeating while the run was in its care", now)  # fmt: skip
                    crashed.append(run_id)
                cur.execute("DELETE FROM run_claims WHERE flow_run_id = ?", (run_bytes,))
            return SweepResult(tuple(returned), tuple(crashed))


# -- rows -----------------------------------------------------------------------------------

_POOL_COLUMNS = "name, concurrency_limit, paused, description, created"


def _pool(row: Any) -> WorkPool:
    return WorkPool(row[0], row[1], bool(row[2]), row[3], row[4])


def _deployment(row: Any) -> Deployment:
    return Deployment(
        UUID(bytes=row[0]), row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), json.loads(row[6]),
        tuple(json.loads(row[7])), row[8], row[9], row[10], bool(row[11]), row[12], row[13], row[14], row[15],
    )


def _match(ident: str | UUID) -> str:
    return "id = ?" if isinstance(ident, UUID) else "name = ?"


def _key(ident: str | UUID) -> Any:
    return ident.bytes if isinstance(ident, UUID) else ident


def _read_deployment(cur: sqlite3.Cursor, ident: str | UUID) -> Deployment:
    if isinstance(ident, str):  # a deployment id given as text is read as an id
        try:
            ident = UUID(ident)
        except ValueError:
            pass
    row = cur.execute(f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments WHERE {_match(ident)}", (_key(ident),)).fetchone()
    if row is None:
        raise DeploymentNotFound(_no_deployment(ident))
    return _deployment(row)


def _assignment(cur: sqlite3.Cursor, run_id: UUID, token: int, dep: Deployment) -> Assignment:
    name, params, tags, parent_flow, parent_task = cur.execute(
        "SELECT name, parameters, tags, parent_flow_run_id, parent_task_run_id FROM flow_runs WHERE id = ?",
        (run_id.bytes,),
    ).fetchone()
    return Assignment(
        run_id, token, name, json.loads(params), tuple(json.loads(tags)),
        None if parent_flow is None else UUID(bytes=parent_flow), None if parent_task is None else UUID(bytes=parent_task),
        dep,
    )  # fmt: skip


def _check_schedule_parameters(
    schema: dict[str, Any], defaults: dict[str, Any], schedule: dict[str, Any], flow_name: str,
) -> None:
    """Every tick's run gets the deployment's parameters overridden by the schedule's: they
    must make a valid run, or each tick would fail in a worker instead of here."""
    problems = check_parameters(schema, {**defaults, **(schedule.get("parameters") or {})}, flow_name)
    if problems:
        what = schedule.get("slug") or schedule.get("kind", "schedule")
        raise InvalidParameters(f"schedule {what!r}: its runs' parameters would be invalid: " + "; ".join(problems))


def _count(cur: sqlite3.Cursor, where: str, value: Any) -> int:
    return int(cur.execute(f"SELECT count(*) FROM run_claims WHERE {where}", (value,)).fetchone()[0])


def _no_pool(name: str) -> str:
    return f"work pool {name!r} does not exist; create it with `headwater work-pool create {name}`"


def _no_deployment(ident: str | UUID) -> str:
    return f"deployment {str(ident)!r} does not exist; `headwater deployment ls` lists them (names are flow-name/deployment-name)"
