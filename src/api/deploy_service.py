"""The deployment calls of the state service, and the dispatcher that hands due runs to
workers over their one stream each (`WorkerRuns`).

A worker dials out and holds one server stream; it never listens. When a run is due (created
by `CreateDeploymentRun`, its time reached, a limit freed by a finished run, a doorbell rung
by another process on the embedded default, or the sweeper's turn) `dispatch` claims runs for
the connected workers, least loaded first and one at a time, so runs spread over them, and
pushes each claim on its worker's stream. The claim is in the database before it is pushed: a
push lost with a broken stream is re-sent when the worker reconnects (`DeployStore.unstarted`),
or given back to the queue when its lease passes. The worker then calls `StartClaimedRun`,
which the store fences by the claim's token, and `ReleaseClaim` when the run's process ended.

A run a worker started that is then cancelled (CANCELLING) gets a "cancel" item on that
worker's stream too: the run's own process is told on its control stream and stops itself,
and the worker stops the process if it has not ended within its grace.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import grpc

from . import codec, rules
from . import deploy_models as dm
from .deploy_store import Assignment, DeployStore, DeploymentSpec
from .doorbell import ring
from .errors import InvalidPayload

log = logging.getLogger(__name__)

Handler = Callable[[bytes], dict[str, Any]]
DEPLOY_WRITES = frozenset({
    "CreateWorkPool", "UpdateWorkPool", "DeleteWorkPool", "UpsertDeployment", "PauseDeployment",
    "DeleteDeployment", "CreateDeploymentRun", "HeartbeatWorker", "StopWorker", "StartClaimedRun", "ReleaseClaim",
    "AddSchedule", "SetScheduleActive", "DeleteSchedule",
})  # fmt: skip
_CANCELLED = (rules.CANCELLING, rules.CANCELLED)


class _WorkerStream:
    __slots__ = ("name", "outbox", "assigned", "told_cancel")

    def __init__(self, name: str) -> None:
        self.name = name
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.assigned: set[UUID] = set()
        self.told_cancel: set[UUID] = set()

    def push_run(self, assignment: Assignment) -> None:
        self.assigned.add(assignment.flow_run_id)
        self.outbox.put(codec.pack({"kind": "run", "assignment": assignment_json(assignment)}))


class DeployService:
    """Deployments, pools and workers (`DeployStore`, durable) and the connected workers'
    streams (memory)."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", always_schedule: bool = False) -> None:
        """`always_schedule`: run the scheduler on every sweep (a standalone server); else only
        while a worker or `serve` process is connected here (an embedded service, which every
        flow process has, does not schedule for a home it merely records into)."""
        self.store = DeployStore(path, synchronous=synchronous, beside_storage=True)
        self._always_schedule = always_schedule
        #: Told after a claim pass cancelled runs (`cancel_other`): pushes their messages.
        self.after_cancel: Callable[[], None] = lambda: None
        self._path = path
        self._lock = threading.Lock()
        self._dispatching = threading.Lock()
        self._streams: dict[str, _WorkerStream] = {}
        self._ending = False

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateWorkPool": self.create_pool, "ReadWorkPool": self.read_pool, "ListWorkPools": self.list_pools,
            "UpdateWorkPool": self.update_pool, "DeleteWorkPool": self.delete_pool,
            "UpsertDeployment": self.upsert_deployment, "ReadDeployment": self.read_deployment,
            "ListDeployments": self.list_deployments, "PauseDeployment": self.pause_deployment,
            "DeleteDeployment": self.delete_deployment, "CreateDeploymentRun": self.create_run,
            "HeartbeatWorker": self.heartbeat, "StopWorker": self.stop_worker, "ListWorkers": self.list_workers,
            "StartClaimedRun": self.start_run, "ReleaseClaim": self.release,
            "ListSchedules": self.list_schedules, "AddSchedule": self.add_schedule,
            "SetScheduleActive": self.set_schedule_active, "DeleteSchedule": self.delete_schedule,
        }  # fmt: skip

    def hosting(self) -> bool:
        """Whether a worker or `serve` process is connected here (it then schedules too)."""
        with self._lock:
            return bool(self._streams)

    def end_streams(self) -> None:
        with self._lock:
            self._ending = True
            for stream in self._streams.values():
                stream.outbox.put(None)

    def close(self) -> None:
        self.end_streams()
        self.store.close()

    # -- pools -----------------------------------------------------------------------------

    def create_pool(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.PoolIn, data)
        pool = self.store.create_pool(
            body.name, concurrency_limit=body.concurrency_limit, description=body.description, exist_ok=body.exist_ok
        )
        return _json(pool)

    def read_pool(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.read_pool(codec.decode(dm.PoolRefIn, data).name))

    def list_pools(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.list_pools())

    def update_pool(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.PoolUpdateIn, data)
        limit: int | None | bool = None if body.clear_limit else (body.concurrency_limit or False)
        pool = self.store.update_pool(body.name, paused=body.paused, concurrency_limit=limit)
        self.dispatch()  # resumed, or a higher limit: runs may start now
        return _json(pool)

    def delete_pool(self, data: bytes) -> dict[str, Any]:
        self.store.delete_pool(codec.decode(dm.PoolRefIn, data).name)
        return _json(None)

    # -- deployments -----------------------------------------------------------------------

    def upsert_deployment(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.DeploymentIn, data)
        spec = DeploymentSpec(
            body.name, body.flow_name, body.entrypoint, _object(body.source, "source"),
            _object(body.parameters, "parameters"), _object(body.parameter_schema, "parameter_schema"),
            tuple(body.tags), body.work_pool, body.description, body.version, body.paused,
            body.concurrency_limit, body.collision_strategy,
            None if body.schedules is None else tuple(_objects(body.schedules, "schedules")),
        )  # fmt: skip
        deployment = self.store.upsert_deployment(spec)
        if spec.schedules is not None:
            self.schedule()
        return _json(deployment)

    # -- schedules -------------------------------------------------------------------------

    def list_schedules(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.ScheduleRefIn, data)
        return _json(self.store.list_schedules(body.deployment))

    def add_schedule(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.ScheduleIn, data)
        info = self.store.add_schedule(body.deployment, _object(body.schedule, "schedule"))
        self.schedule()
        return _json(info)

    def set_schedule_active(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.ScheduleActiveIn, data)
        self.store.set_schedule_active(body.schedule_id, body.active)
        return _json(None)

    def delete_schedule(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.ScheduleActiveIn, data)
        return _json(self.store.delete_schedule(body.schedule_id))

    def schedule(self) -> None:
        """One scheduler pass (runs of ticks due soon, late runs marked), then dispatch."""
        made, late = self.store.scheduler_pass()
        if made or late:
            log.debug("scheduler: %d runs made, %d marked late", made, late)
        self.dispatch()

    def read_deployment(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.read_deployment(codec.decode(dm.DeploymentRefIn, data).name))

    def list_deployments(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.list_deployments(codec.decode(dm.ListDeploymentsIn, data).work_pool))

    def pause_deployment(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.DeploymentPauseIn, data)
        return _json(self.store.set_deployment_paused(body.name, body.paused))

    def delete_deployment(self, data: bytes) -> dict[str, Any]:
        return _json([str(r) for r in self.store.delete_deployment(codec.decode(dm.DeploymentRefIn, data).name)])

    def create_run(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.DeploymentRunIn, data)
        created = self.store.create_run(
            body.deployment, parameters=None if body.parameters is None else _object(body.parameters, "parameters"),
            idempotency_key=body.idempotency_key, scheduled_time=body.scheduled_time, tags=body.tags, name=body.name,
            parent_flow_run_id=None if body.parent_flow_run_id is None else codec.uuid_of(body.parent_flow_run_id),
            parent_task_run_id=None if body.parent_task_run_id is None else codec.uuid_of(body.parent_task_run_id),
        )  # fmt: skip
        if created.created:
            self.dispatch()
            self._ring_workers()
        return _json(created)

    # -- workers ---------------------------------------------------------------------------

    def heartbeat(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.HeartbeatWorkerIn, data)
        known = self.store.heartbeat(body.name) if body.lease_seconds is None else self.store.heartbeat(
            body.name, lease=body.lease_seconds
        )
        return _json({"known": known})

    def stop_worker(self, data: bytes) -> dict[str, Any]:
        returned = self.store.stop_worker(codec.decode(dm.WorkerRefIn, data).name)
        if returned:
            self.dispatch()
        return _json([str(r) for r in returned])

    def list_workers(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.list_workers())

    def start_run(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.ClaimIn, data)
        self.store.start(codec.uuid_of(body.flow_run_id), body.token, body.worker)
        return _json(None)

    def release(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(dm.ClaimIn, data)
        run_id = codec.uuid_of(body.flow_run_id)
        self.store.release(run_id, body.token)
        with self._lock:
            stream = self._streams.get(body.worker)
            if stream is not None:
                stream.assigned.discard(run_id)
                stream.told_cancel.discard(run_id)
        self.dispatch()  # a limit may have room now
        return _json(None)

    def stream(self, data: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """`WorkerRuns`: register the worker, re-send the claims it holds and has not started,
        then push each run claimed for it (and cancels of runs it started) until either side
        goes."""
        body = codec.decode(dm.WorkerStreamIn, data)
        self.store.register_worker(
            body.name, pool=body.pool, deployments=[codec.uuid_of(d) for d in body.deployments],
            host=body.host, pid=body.pid, limit=body.limit,
            **({} if body.lease_seconds is None else {"lease": body.lease_seconds}),
        )  # fmt: skip
        stream = _WorkerStream(body.name)
        with self._lock:
            old = self._streams.get(body.name)
            if old is not None:
                old.outbox.put(None)
            self._streams[body.name] = stream
        if not context.add_callback(lambda: stream.outbox.put(None)) or self._ending:
            stream.outbox.put(None)
        for assignment in self.store.unstarted(body.name):
            stream.push_run(assignment)
        stream.outbox.put(codec.pack({"kind": "ready"}))
        self.dispatch()
        try:
            while (item := stream.outbox.get()) is not None:
                yield item
        finally:
            with self._lock:
                if self._streams.get(body.name) is stream:
                    del self._streams[body.name]

    # -- the dispatcher --------------------------------------------------------------------

    def dispatch(self) -> None:
        """Claim due runs for the connected workers, least loaded first, one run per worker
        per pass (so they spread), and tell workers of cancels of runs they started."""
        with self._lock:
            streams = list(self._streams.values())
        if not streams:
            return
        with self._dispatching:
            due = self.store.next_due()
            if due is not None and due <= time.time():
                progress = True
                while progress:
                    progress = False
                    for stream in sorted(streams, key=lambda s: len(s.assigned)):
                        for assignment in self.store.assign(stream.name, most=1):
                            stream.push_run(assignment)
                            progress = True
            if self.store.overlap_cancels:
                self.store.overlap_cancels.clear()
                self.after_cancel()
            for stream in streams:
                for run_id, state in self.store.started_runs(stream.name):
                    if state in _CANCELLED and run_id not in stream.told_cancel:
                        stream.told_cancel.add(run_id)
                        stream.outbox.put(codec.pack({"kind": "cancel", "flow_run_id": run_id.bytes}))

    def sweep(self, now: float | None = None) -> None:
        """The sweeper's turn: expired claims given back or their runs crashed, the scheduler
        (see `__init__`), then dispatch."""
        result = self.store.sweep(now)
        if result.returned or result.crashed:
            log.info("claims expired: %d returned to the queue, %d runs crashed", len(result.returned), len(result.crashed))
        with self._lock:
            hosting = bool(self._streams)
        if self._always_schedule or hosting:
            self.schedule()
        else:
            self.dispatch()

    def _ring_workers(self) -> None:
        """On the embedded default each worker process serves itself: ring the doorbells of
        the live workers on this host so they look now (`doorbell.py`)."""
        here = socket.gethostname()
        cutoff = time.time() - 60
        for worker in self.store.list_workers():
            if worker.pid is not None and worker.host == here and worker.stopped is None and worker.last_heartbeat > cutoff:
                ring(self._path, worker.pid)


def assignment_json(assignment: Assignment) -> dict[str, Any]:
    return _plain(assignment)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _json(value: Any) -> dict[str, Any]:
    return {"body": json.dumps(_plain(value))}


def _objects(text: str, field: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidPayload(f"{field}: not JSON ({exc})") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidPayload(f"{field}: a JSON array of objects is expected")
    return value


def _object(text: str, field: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidPayload(f"{field}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidPayload(f"{field}: a JSON object is expected, not {type(value).__name__}")
    return value
