"""Wire models of the deployment calls (`deploy_service.py`): requests are validated here, at
the edge, like every other call's; replies carry their records as JSON text (`JsonOut`), as
deployments hold JSON documents (parameters, their schema, the source) anyway."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictStr

from .models import MAX_LIST, JsonText, Name, Pid, Tags, Timestamp, Uuid16, Wire

PoolName = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[^\s/][^/]*$")]
DeploymentName = Annotated[StrictStr, Field(min_length=3, max_length=400)]
WorkerName = Annotated[StrictStr, Field(min_length=1, max_length=200)]
LimitValue = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
Token = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]
LeaseSeconds = Annotated[float, Field(strict=True, gt=0, le=3600)]


class PoolIn(Wire):
    name: PoolName
    concurrency_limit: LimitValue | None = None
    description: Name | None = None
    exist_ok: StrictBool = False


class PoolRefIn(Wire):
    name: PoolName


class PoolUpdateIn(Wire):
    """Pause/resume a pool, or set (`concurrency_limit`) or remove (`clear_limit`) its limit."""

    name: PoolName
    paused: StrictBool | None = None
    concurrency_limit: LimitValue | None = None
    clear_limit: StrictBool = False


class DeploymentIn(Wire):
    name: DeploymentName
    flow_name: Name
    entrypoint: Name
    source: JsonText
    parameters: JsonText = "{}"
    parameter_schema: JsonText = "{}"
    tags: Tags = []
    work_pool: PoolName | None = None
    description: Name | None = None
    version: Name | None = None
    paused: StrictBool = False
    concurrency_limit: LimitValue | None = None
    collision_strategy: Annotated[StrictStr, Field(max_length=32)] = "enqueue"
    schedules: JsonText | None = None  # a JSON array of schedules; absent: leave them as they are


class ScheduleRefIn(Wire):
    deployment: DeploymentName | None = None


class ScheduleIn(Wire):
    deployment: DeploymentName
    schedule: JsonText


class ScheduleActiveIn(Wire):
    schedule_id: Annotated[int, Field(strict=True, ge=1)]
    active: StrictBool = True


class DeploymentRefIn(Wire):
    """A deployment by name (`flow-name/deployment-name`) or id (text)."""

    name: DeploymentName


class DeploymentPauseIn(Wire):
    name: DeploymentName
    paused: StrictBool


class ListDeploymentsIn(Wire):
    work_pool: PoolName | None = None


class DeploymentRunIn(Wire):
    deployment: DeploymentName
    name: Name
    parameters: JsonText | None = None
    idempotency_key: Annotated[StrictStr, Field(min_length=1, max_length=1_000)] | None = None
    scheduled_time: Timestamp | None = None
    tags: Tags = []
    parent_flow_run_id: Uuid16 | None = None
    parent_task_run_id: Uuid16 | None = None


class WorkerStreamIn(Wire):
    """`WorkerRuns`: a worker's one stream. It serves `pool`, or (a `serve` process) the
    `deployments` it registered, and takes at most `limit` runs at once."""

    name: WorkerName
    pool: PoolName | None = None
    deployments: Annotated[list[Uuid16], Field(max_length=MAX_LIST)] = []
    host: Name | None = None
    pid: Pid | None = None
    limit: LimitValue | None = None
    lease_seconds: LeaseSeconds | None = None


class WorkerRefIn(Wire):
    name: WorkerName


class HeartbeatWorkerIn(Wire):
    name: WorkerName
    lease_seconds: LeaseSeconds | None = None


class ClaimIn(Wire):
    """`StartClaimedRun` / `ReleaseClaim`: the worker's claim on a run, fenced by its token."""

    flow_run_id: Uuid16
    token: Token
    worker: WorkerName


class JsonOut(Wire):
    body: StrictStr
