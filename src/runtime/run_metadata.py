"""The current run's metadata, read the way `prefect.runtime` reads it.

`flow_run.py`, `task_run.py` and `deployment.py` in this package are its faces: modules whose
attributes (PEP 562 `__getattr__`) call the readers below, so `flow_run.name` is always the
run executing here, in whatever thread asks. Where an answer comes from:

- In the flow's process (the flow's body, its tasks on threads or called directly, subflows):
  the run records in the context vars (`context.py`). No I/O.
- In a task on another process (the process pool, Dask, Ray), where only the task run
  travelled: the task run's own record, and for the flow run one read of the state service
  (`ReadFlowRun`), kept per process, since a flow run's name, flow, parameters and tags never
  change. Its parameters are then as recorded: JSON-safe copies of the values. With recording
  off there is no service to read: everything but `flow_run.id` is empty there.
- While a run-name callable runs (`task_run_name=`, `flow_run_name=`), the run does not exist
  yet; `task_run.parameters` / `flow_run.parameters` are those of the run being named, so the
  Prefect idiom of naming runs from their parameters works.
- Outside any run: the empty values Prefect gives (None, [], {}, 0), never an exception.

Ids are strings, as Prefect's runtime gives them (the run records hold UUIDs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from .context import flow_run_var, task_context_here, task_run_var
from .recording import RunServices

if TYPE_CHECKING:
    from ..api.records import FlowRunInfo
    from ..api.process_recorders import RecorderTarget
    from .runs import FlowRun

RunKind = Literal["flow", "task"]

# (kind of run being named, its parameters) while a run-name callable runs
_naming: ContextVar[tuple[RunKind, dict[str, Any]] | None] = ContextVar("headwater_naming", default=None)

# How long a worker waits for its flow run's record to reach the service: the flow announces
# its run before any task starts, but through a batching recorder, so a task that starts at
# once on another process can ask first.
_RECORD_WAIT_SECONDS = 5.0


@contextmanager
def naming(kind: RunKind, parameters: dict[str, Any]) -> Iterator[None]:
    """Around a run-name callable: `{kind}_run.parameters` are `parameters` inside."""
    token = _naming.set((kind, parameters))
    try:
        yield
    finally:
        _naming.reset(token)


# -- the flow run -------------------------------------------------------------------------


def flow_run_id() -> str | None:
    flow_ctx = flow_run_var.get()
    if flow_ctx is not None:
        return str(flow_ctx.flow_run.id)
    task_ctx = task_run_var.get()
    run_id = task_ctx.task_run.flow_run_id if task_ctx is not None else None
    return str(run_id) if run_id is not None else None


def flow_run_name() -> str | None:
    run = _flow_run()
    return run.name if run is not None else None


def flow_name() -> str | None:
    run = _flow_run()
    return run.flow_name if run is not None else None


def flow_run_parameters() -> dict[str, Any]:
    named = _naming.get()
    if named is not None and named[0] == "flow":
        return dict(named[1])
    run = _flow_run()
    return dict(run.parameters) if run is not None else {}


def flow_run_tags() -> list[str]:
    run = _flow_run()
    return list(run.tags) if run is not None else []


def parent_flow_run_id() -> str | None:
    run = _flow_run()
    parent = run.parent_flow_run_id if run is not None else None
    return str(parent) if parent is not None else None


def scheduled_start_time() -> datetime:
    """When the run was meant to start. Headwater starts a flow run when it is called, so that
    is when it was created; outside a run, now (as Prefect gives it)."""
    flow_ctx = flow_run_var.get()
    created: float | None = None
    if flow_ctx is not None:
        history = flow_ctx.flow_run.history
        created = history[0].ts if history else None
    else:
        recorded = _recorded_flow_run()
        created = recorded.created if recorded is not None else None
    return datetime.fromtimestamp(time.time() if created is None else created, tz=timezone.utc)


def _flow_run() -> FlowRun | FlowRunInfo | None:
    flow_ctx = flow_run_var.get()
    if flow_ctx is not None:
        return flow_ctx.flow_run
    return _recorded_flow_run()


def _recorded_flow_run() -> FlowRunInfo | None:
    """The flow run of the task running here, read from the state service (none outside a
    task, for a task outside any flow, or with recording off)."""
    task_ctx = task_run_var.get()
    if task_ctx is None:
        return None
    run_id, target = task_ctx.task_run.flow_run_id, task_ctx.services.target
    if run_id is None or target is None:
        return None
    return _read_flow_run(target, run_id)


@lru_cache(maxsize=64)  # a worker serves a few flows at a time; their runs do not change
def _read_flow_run(target: RecorderTarget, run_id: UUID) -> FlowRunInfo:
    from ..api import RunNotFound

    deadline = time.monotonic() + _RECORD_WAIT_SECONDS
    with RunServices(target).client(timeout=10.0) as client:
        while True:
            try:
                return client.read_flow_run(run_id)
            except RunNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


# -- the task run -------------------------------------------------------------------------


def task_run_id() -> str | None:
    task_ctx = task_context_here()
    return str(task_ctx.task_run.id) if task_ctx is not None else None


def task_run_name() -> str | None:
    task_ctx = task_context_here()
    return task_ctx.task_run.name if task_ctx is not None else None


def task_name() -> str | None:
    task_ctx = task_context_here()
    return task_ctx.task_run.task_name if task_ctx is not None else None


def task_run_parameters() -> dict[str, Any]:
    named = _naming.get()
    if named is not None and named[0] == "task":
        return dict(named[1])
    task_ctx = task_context_here()
    return dict(task_ctx.parameters) if task_ctx is not None else {}


def task_run_tags() -> list[str]:
    task_ctx = task_context_here()
    return list(task_ctx.task_run.tags) if task_ctx is not None else []


def task_run_count() -> int:
    task_ctx = task_context_here()
    return task_ctx.task_run.run_count if task_ctx is not None else 0


def module_attributes(
    module: str, fields: dict[str, Callable[[], Any]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The PEP 562 `__getattr__` and `__dir__` of a metadata module (`flow_run`, `task_run`,
    `deployment`): each attribute is read from `fields` when accessed."""

    def getattr_(name: str) -> Any:
        reader = fields.get(name)
        if reader is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return reader()

    def dir_() -> list[str]:
        return sorted(fields)

    return getattr_, dir_
