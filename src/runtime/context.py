"""What is running right now, in this thread or task: the run context, held in contextvars.

Contextvars follow work into runner threads (the thread runner copies the submitter's context),
so code inside a task sees both its own task run and the flow run that submitted it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import MissingContext
from .recording import RunServices, services_here

if TYPE_CHECKING:
    from ..runners.base import TaskRunner
    from .flows import Flow
    from .runs import FlowRun, TaskRun
    from .scheduler import TaskScheduler
    from .tasks import Task


@dataclass(slots=True, eq=False)
class FlowRunContext:
    flow: Flow[..., Any]
    flow_run: FlowRun
    runner: TaskRunner
    scheduler: TaskScheduler
    log_prints: bool
    services: RunServices
    # per task name, how many runs this flow run has created (names them "task-0", "task-1")
    task_run_counts: dict[str, itertools.count[int]] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class TaskRunContext:
    task: Task[..., Any]
    task_run: TaskRun
    log_prints: bool
    services: RunServices
    # the values the task is called with (upstream results in place of their futures, once
    # the engine has loaded them): what `task_run.parameters` reads
    parameters: dict[str, Any] = field(default_factory=dict)


flow_run_var: ContextVar[FlowRunContext | None] = ContextVar("headwater_flow_run", default=None)
task_run_var: ContextVar[TaskRunContext | None] = ContextVar("headwater_task_run", default=None)


@contextmanager
def entered(var: ContextVar[Any], value: Any) -> Iterator[Any]:
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)


def task_context_here() -> TaskRunContext | None:
    """The task run whose code runs here, if any.

    A subflow called inside a task runs with that task's context still set, but its body is
    not in the task (Prefect gets this wrong: PrefectHQ/prefect#19449). So a task context
    counts only when its run belongs to the innermost flow run here, or when there is none (a
    worker process, or a task called outside any flow)."""
    task_ctx = task_run_var.get()
    if task_ctx is None:
        return None
    flow_ctx = flow_run_var.get()
    if flow_ctx is not None and task_ctx.task_run.flow_run_id != flow_ctx.flow_run.id:
        return None
    return task_ctx


def get_run_context() -> TaskRunContext | FlowRunContext:
    """The innermost run: the task run if inside a task, else the flow run."""
    ctx = task_context_here() or flow_run_var.get()
    if ctx is None:
        raise MissingContext("no flow or task is running here; call this inside a @flow or @task")
    return ctx


def current_services() -> RunServices:
    """The services of the innermost run here, or this process's own outside any run."""
    ctx = task_run_var.get() or flow_run_var.get()
    if ctx is not None:
        return ctx.services
    return services_here()
