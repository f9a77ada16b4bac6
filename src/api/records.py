"""The plain data the state service moves around: frozen dataclasses and NamedTuples, no pydantic.

Write side (what the runtime records): `FlowRunRecord`, `TaskRunRecord`, `StateRecord`,
`Heartbeat`. A run record also says where the process that announced it runs (host and pid):
the flow's process announces every run, and a worker that takes a task run over re-announces
it as `moved`, so the server keeps the latest placement (see `TaskRunRecord.moved`). Read side (what clients and the CLI get back): `FlowRunInfo`, `TaskRunInfo`,
`StateInfo`, queried with a `RunFilter`. A `Rejection` says why the server refused a state;
an `Unstorable` why a record could not be stored at all.

Pydantic models exist only at the wire edge (`models.py`); `codec.py` converts between the two.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple
from uuid import UUID

from .log_records import LogRecord

RunKind = Literal["flow", "task"]

#: The shared, read-only default of `TaskRunRecord.upstream`.
_NO_UPSTREAM: Mapping[str, tuple[UUID, ...]] = MappingProxyType({})

#: How often the runtime calls `Recorder.heartbeat` for each running flow run (seconds), unless
#: `HEADWATER_HEARTBEAT_INTERVAL_SECONDS` says otherwise.
HEARTBEAT_INTERVAL = 5.0
#: A server's heartbeat timeout must be at least this many client heartbeat intervals: a
#: live run misses a beat or two (a stalled process, a reconnect) without being reaped.
HEARTBEAT_TIMEOUT_FACTOR = 3


def as_uuid(value: UUID | bytes) -> UUID:
    """An id as a UUID: records decoded by the writer process carry the hot ids (a task run's,
    a state's run and transition) as their 16 raw bytes, which storage uses as they are."""
    return value if isinstance(value, UUID) else UUID(bytes=value)


@dataclass(frozen=True, slots=True)
class FlowRunRecord:
    """A flow run as the runtime announces it. `parameters` must already be JSON-safe."""

    id: UUID
    name: str
    flow_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    parent_flow_run_id: UUID | None = None
    parent_task_run_id: UUID | None = None
    tags: tuple[str, ...] = ()
    created: float = 0.0
    host: str | None = None
    pid: int | None = None


class TaskRunRecord(NamedTuple):
    """A task run; `upstream` maps a parameter name to the task run ids that fed it.

    A NamedTuple, not a dataclass: the runtime makes one per task run on its hot path, and a
    tuple is built in a fraction of a frozen dataclass's time (see `recording.py`)."""

    id: UUID
    flow_run_id: UUID | None
    name: str
    task_name: str
    tags: tuple[str, ...] = ()
    upstream: Mapping[str, tuple[UUID, ...]] = _NO_UPSTREAM
    created: float = 0.0
    #: The announcing process: its host name and pid (None from a client that predates them).
    host: str | None = None
    pid: int | None = None
    #: A re-announcement by a worker that took the run over for its attempt `moved` (1, 2,
    #: ...; `RemoteReporter.adopt`), else 0: its host and pid replace the stored ones unless
    #: a later attempt's already did (each worker records over its own connection, so an
    #: earlier attempt's may arrive last). A first announcement fills them in only where none
    #: are stored, since it may reach the server after a worker's. `True` is attempt 1.
    moved: int = 0


class StateRecord(NamedTuple):
    """One proposed state change. `transition_id` makes a re-sent change idempotent.

    A NamedTuple for the same reason as `TaskRunRecord`: three per task run."""

    run_id: UUID
    run_kind: RunKind
    type: str
    name: str
    message: str | None
    timestamp: float
    transition_id: UUID
    retry: bool = False


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A liveness signal for a running flow run; the server stamps it with its own clock."""

    flow_run_id: UUID


@dataclass(frozen=True, slots=True)
class Rejection:
    """A state change the orchestration rules refused."""

    run_id: UUID
    transition_id: UUID
    reason: str


@dataclass(frozen=True, slots=True)
class StateInfo:
    """One row of a run's state history."""

    run_id: UUID
    type: str
    name: str
    message: str | None
    timestamp: float
    transition_id: UUID


@dataclass(frozen=True, slots=True)
class FlowRunInfo:
    """A flow run as stored, with its current state, how many task runs it has and where it
    ran (host, pid)."""

    id: UUID
    name: str
    flow_name: str
    parameters: dict[str, Any]
    parent_flow_run_id: UUID | None
    parent_task_run_id: UUID | None
    tags: tuple[str, ...]
    created: float | None
    start_time: float | None
    end_time: float | None
    state_type: str | None
    state_name: str | None
    last_heartbeat: float | None
    task_run_count: int = 0
    host: str | None = None
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class TaskRunInfo:
    """A task run as stored, with its current state and where it ran last (host, pid)."""

    id: UUID
    flow_run_id: UUID | None
    name: str
    task_name: str
    tags: tuple[str, ...]
    upstream: Mapping[str, tuple[UUID, ...]]
    created: float | None
    start_time: float | None
    end_time: float | None
    state_type: str | None
    state_name: str | None
    host: str | None = None
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which flow runs to list; `None` means no constraint. Newest first."""

    state_type: str | None = None
    flow_name: str | None = None
    parent_flow_run_id: UUID | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Unstorable:
    """A record that cannot be stored at all (see `Batch.without_unstorable`)."""

    run_id: UUID
    reason: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What the server did with one batch: how many states it applied, what it refused, and
    which records it could not store at all (the rest of the batch was stored)."""

    applied: int
    rejections: tuple[Rejection, ...] = ()
    unstored: tuple[Unstorable, ...] = ()


@dataclass(frozen=True, slots=True)
class Batch:
    """Records committed together: runs first, then states in the order they were produced,
    then log lines (`log_records.py`). The recorder ships logs in batches of their own, so a
    batch of logs the server refuses never takes a state with it."""

    flows: tuple[FlowRunRecord, ...] = ()
    tasks: tuple[TaskRunRecord, ...] = ()
    states: tuple[StateRecord, ...] = ()
    heartbeats: tuple[UUID, ...] = ()
    logs: tuple[LogRecord, ...] = ()

    def __len__(self) -> int:
        return (len(self.flows) + len(self.tasks) + len(self.states) + len(self.heartbeats)
                + len(self.logs))

    def run_ids(self) -> set[UUID]:
        """Every run this batch touches, for naming unrecorded runs in errors."""
        ids = {r.id for r in self.flows} | {r.id for r in self.tasks}
        return ids | {s.run_id for s in self.states} | set(self.heartbeats)

    def without_unstorable(self) -> tuple[Batch, tuple[Unstorable, ...]]:
        """This batch without the records that no store or wire can take (text that is not
        valid Unicode, such as a lone surrogate; parameters that are not JSON), and why each
        cannot be taken, naming its run and field. Used only after a batch failed, so that one
        bad record fails alone instead of taking its neighbours (other runs) with it."""
        bad: list[Unstorable] = []

        def keep(rec: Any, problem: str | None) -> bool:
            if problem is not None:
                bad.append(Unstorable(as_uuid(rec.run_id if isinstance(rec, StateRecord) else rec.id), problem))
            return problem is None

        flows = tuple(r for r in self.flows if keep(r, _flow_problem(r)))
        tasks = tuple(r for r in self.tasks if keep(r, _task_problem(r)))
        states = tuple(r for r in self.states if keep(r, _state_problem(r)))
        # A log line that cannot be stored is left out without naming its run: logs are never
        # a reason to fail a flow's recording (`admit_log` makes this rare in the first place).
        logs = tuple(r for r in self.logs if _log_problem(r) is None)
        return Batch(flows, tasks, states, self.heartbeats, logs), tuple(bad)


def _text_problem(where: str, field: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{where}: {field} is {type(value).__name__}, not text"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{where}: {field} is not valid Unicode text ({exc.reason} in {ascii(value[:80])})"
    return None


def _texts_problem(where: str, field: str, values: Iterable[Any]) -> str | None:
    return next((p for v in values if (p := _text_problem(where, field, v)) is not None), None)


def _flow_problem(r: FlowRunRecord) -> str | None:
    where = f"flow run {r.id}"
    problem = (
        _text_problem(where, "name", r.name) or _text_problem(where, "flow_name", r.flow_name)
        or _texts_problem(where, "a tag", r.tags) or _host_problem(where, r.host)
    )
    if problem is None:
        try:
            json.dumps(r.parameters).encode("utf-8")
        except (TypeError, ValueError) as exc:
            problem = f"{where}: parameters are not JSON ({exc})"
    return problem


def _task_problem(r: TaskRunRecord) -> str | None:
    where = f"task run {r.id}"
    return (
        _text_problem(where, "name", r.name) or _text_problem(where, "task_name", r.task_name)
        or _texts_problem(where, "a tag", r.tags)
        or _texts_problem(where, "an upstream parameter name", r.upstream)
        or _host_problem(where, r.host)
    )


def _host_problem(where: str, host: str | None) -> str | None:
    return None if host is None else _text_problem(where, "host", host)


def _state_problem(s: StateRecord) -> str | None:
    where = f"state {s.name!a} of {s.run_kind} run {s.run_id}"
    problem = _text_problem(where, "type", s.type) or _text_problem(where, "name", s.name)
    if problem is None and s.message is not None:
        problem = _text_problem(where, "message", s.message)
    return problem


def _log_problem(r: LogRecord) -> str | None:
    where = f"log line of flow run {r.flow_run_id}"
    problem = _text_problem(where, "logger", r.logger) or _text_problem(where, "message", r.message)
    if problem is None and r.exception is not None:
        problem = _text_problem(where, "exception", r.exception)
    return problem
