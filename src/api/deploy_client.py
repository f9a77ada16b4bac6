"""The deployment calls, from a client: pools, deployments, runs of deployments, and what a
worker calls (`worker_stream`, `heartbeat`, `start_run`, `release`). See `deploy_service.py`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from . import codec
from . import deploy_models as dm
from .client import Target, UnaryCaller, _Call
from .service import method_path
from .deploy_store import Assignment, CreatedRun, Deployment, DeploymentSpec, WorkerInfo, WorkPool
from .errors import deploy_error_for_status
from .schedule_runs import ScheduleInfo


def _body(out: dm.JsonOut) -> Any:
    return json.loads(out.body)


def _call(method: str, write: bool = False) -> _Call[Any]:
    return _Call(method, dm.JsonOut, _body, write=write)


def pool_from(d: dict[str, Any]) -> WorkPool:
    return WorkPool(d["name"], d["concurrency_limit"], d["paused"], d["description"], d["created"])


def deployment_from(d: dict[str, Any]) -> Deployment:
    return Deployment(
        UUID(d["id"]), d["name"], d["flow_name"], d["entrypoint"], d["source"], d["parameters"], d["parameter_schema"],
        tuple(d["tags"]), d["work_pool"], d["description"], d["version"], d["paused"], d["concurrency_limit"],
        d["collision_strategy"], d["created"], d["updated"],
    )  # fmt: skip


def schedule_info_from(d: dict[str, Any]) -> ScheduleInfo:
    return ScheduleInfo(
        d["id"], UUID(d["deployment_id"]), d["content_key"], d["slug"], d["spec"], d["active"], d["created"],
        d["superseded"], d["scheduled_until"],
    )  # fmt: skip


def worker_from(d: dict[str, Any]) -> WorkerInfo:
    return WorkerInfo(
        d["name"], d["pool"], tuple(UUID(x) for x in d["deployments"]), d["host"], d["pid"], d["limit"], d["started"],
        d["last_heartbeat"], d["stopped"], tuple(UUID(x) for x in d["running"]),
    )  # fmt: skip


def assignment_from(d: dict[str, Any]) -> Assignment:
    return Assignment(
        UUID(d["flow_run_id"]), d["token"], d["run_name"], d["parameters"], tuple(d["tags"]),
        None if d["parent_flow_run_id"] is None else UUID(d["parent_flow_run_id"]),
        None if d["parent_task_run_id"] is None else UUID(d["parent_task_run_id"]),
        deployment_from(d["deployment"]),
    )  # fmt: skip


class DeployClient(UnaryCaller):
    """Blocking client of the deployment calls; thread-safe."""

    _error_for = staticmethod(deploy_error_for_status)

    def __init__(self, target: Target | str | None, *, timeout: float = 10.0, retry_for: float = 30.0) -> None:
        super().__init__(target, timeout=timeout, retry_for=retry_for)

    # -- pools -----------------------------------------------------------------------------

    def create_pool(self, name: str, *, concurrency_limit: int | None = None, description: str | None = None,
                    exist_ok: bool = False) -> WorkPool:  # fmt: skip
        body: dict[str, Any] = {"name": name, "exist_ok": exist_ok}
        if concurrency_limit is not None:
            body["concurrency_limit"] = concurrency_limit
        if description is not None:
            body["description"] = description
        return pool_from(self._call(_call("CreateWorkPool", True), body))

    def read_pool(self, name: str) -> WorkPool:
        return pool_from(self._call(_call("ReadWorkPool"), {"name": name}))

    def list_pools(self) -> list[WorkPool]:
        return [pool_from(d) for d in self._call(_call("ListWorkPools"), {})]

    def update_pool(self, name: str, *, paused: bool | None = None, concurrency_limit: int | None = None,
                    clear_limit: bool = False) -> WorkPool:  # fmt: skip
        body: dict[str, Any] = {"name": name, "clear_limit": clear_limit}
        if paused is not None:
            body["paused"] = paused
        if concurrency_limit is not None:
            body["concurrency_limit"] = concurrency_limit
        return pool_from(self._call(_call("UpdateWorkPool", True), body))

    def delete_pool(self, name: str) -> None:
        self._call(_call("DeleteWorkPool", True), {"name": name})

    # -- deployments -----------------------------------------------------------------------

    def upsert_deployment(self, spec: DeploymentSpec) -> Deployment:
        body: dict[str, Any] = {
            "name": spec.name, "flow_name": spec.flow_name, "entrypoint": spec.entrypoint,
            "source": json.dumps(spec.source), "parameters": json.dumps(spec.parameters),
            "parameter_schema": json.dumps(spec.parameter_schema), "tags": list(spec.tags),
            "paused": spec.paused, "collision_strategy": spec.collision_strategy,
        }  # fmt: skip
        for key in ("work_pool", "description", "version", "concurrency_limit"):
            if getattr(spec, key) is not None:
                body[key] = getattr(spec, key)
        if spec.schedules is not None:
            body["schedules"] = json.dumps(list(spec.schedules))
        return deployment_from(self._call(_call("UpsertDeployment", True), body))

    # -- schedules -------------------------------------------------------------------------

    def list_schedules(self, deployment: str | UUID | None = None) -> list[ScheduleInfo]:
        body = {} if deployment is None else {"deployment": str(deployment)}
        return [schedule_info_from(d) for d in self._call(_call("ListSchedules"), body)]

    def add_schedule(self, deployment: str | UUID, schedule: dict[str, Any]) -> ScheduleInfo:
        body = {"deployment": str(deployment), "schedule": json.dumps(schedule)}
        return schedule_info_from(self._call(_call("AddSchedule", True), body))

    def set_schedule_active(self, schedule_id: int, active: bool) -> None:
        self._call(_call("SetScheduleActive", True), {"schedule_id": schedule_id, "active": active})

    def delete_schedule(self, schedule_id: int) -> int:
        """Retire a schedule; returns how many of its waiting runs ended Superseded."""
        return int(self._call(_call("DeleteSchedule", True), {"schedule_id": schedule_id}))

    def read_deployment(self, name: str | UUID) -> Deployment:
        return deployment_from(self._call(_call("ReadDeployment"), {"name": str(name)}))

    def list_deployments(self, work_pool: str | None = None) -> list[Deployment]:
        body = {} if work_pool is None else {"work_pool": work_pool}
        return [deployment_from(d) for d in self._call(_call("ListDeployments"), body)]

    def pause_deployment(self, name: str | UUID, paused: bool = True) -> Deployment:
        return deployment_from(self._call(_call("PauseDeployment", True), {"name": str(name), "paused": paused}))

    def delete_deployment(self, name: str | UUID) -> list[UUID]:
        return [UUID(r) for r in self._call(_call("DeleteDeployment", True), {"name": str(name)})]

    def create_run(
        self, deployment: str | UUID, *, name: str, parameters: dict[str, Any] | None = None,
        idempotency_key: str | None = None, scheduled_time: float | None = None, tags: Sequence[str] = (),
        parent_flow_run_id: UUID | None = None, parent_task_run_id: UUID | None = None,
    ) -> CreatedRun:
        body: dict[str, Any] = {"deployment": str(deployment), "name": name, "tags": list(tags)}
        if parameters is not None:
            body["parameters"] = json.dumps(parameters)
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        if scheduled_time is not None:
            body["scheduled_time"] = float(scheduled_time)
        if parent_flow_run_id is not None:
            body["parent_flow_run_id"] = parent_flow_run_id.bytes
        if parent_task_run_id is not None:
            body["parent_task_run_id"] = parent_task_run_id.bytes
        d = self._call(_call("CreateDeploymentRun", True), body)
        return CreatedRun(UUID(d["flow_run_id"]), d["name"], d["created"])

    # -- workers ---------------------------------------------------------------------------

    def list_workers(self) -> list[WorkerInfo]:
        return [worker_from(d) for d in self._call(_call("ListWorkers"), {})]

    def heartbeat(self, worker: str, lease_seconds: float | None = None) -> bool:
        body: dict[str, Any] = {"name": worker}
        if lease_seconds is not None:
            body["lease_seconds"] = float(lease_seconds)
        return bool(self._call(_call("HeartbeatWorker", True), body)["known"])

    def stop_worker(self, worker: str) -> None:
        self._call(_call("StopWorker", True), {"name": worker})

    def start_run(self, flow_run_id: UUID, token: int, worker: str) -> None:
        """Raises `ClaimLost` when the claim no longer holds: then the run must not start."""
        self._call(_call("StartClaimedRun", True), {"flow_run_id": flow_run_id.bytes, "token": token, "worker": worker})

    def release(self, flow_run_id: UUID, token: int, worker: str) -> None:
        self._call(_call("ReleaseClaim", True), {"flow_run_id": flow_run_id.bytes, "token": token, "worker": worker})

    def worker_stream(
        self, worker: str, *, pool: str | None, deployments: Sequence[UUID] = (), host: str | None = None,
        pid: int | None = None, limit: int | None = None, lease_seconds: float | None = None,
    ) -> Any:
        """Open the worker's `WorkerRuns` stream: an iterator of raw items (decode with
        `stream_item`) that is also a gRPC call (`cancel()` ends it)."""
        body: dict[str, Any] = {"name": worker, "deployments": [d.bytes for d in deployments]}
        for key, value in (("pool", pool), ("host", host), ("pid", pid), ("limit", limit), ("lease_seconds", lease_seconds)):
            if value is not None:
                body[key] = value
        open_stream = self._channel.unary_stream(method_path("WorkerRuns"))
        return open_stream(codec.pack(body), metadata=self._metadata)


def stream_item(data: bytes) -> tuple[str, Assignment | UUID | None]:
    """One `WorkerRuns` item: ("run", Assignment), ("cancel", flow run id) or ("ready", None)."""
    item = codec.unpack(data)
    kind = item.get("kind")
    if kind == "run":
        return "run", assignment_from(item["assignment"])
    if kind == "cancel":
        return "cancel", codec.uuid_of(item["flow_run_id"])
    return str(kind), None


def stream_items(call: Any) -> Iterator[tuple[str, Assignment | UUID | None]]:
    for data in call:
        yield stream_item(data)
