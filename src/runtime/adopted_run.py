"""A flow run that exists before its flow is called: a deployment's run, created SCHEDULED by
the state service and started by a worker (or `serve`) in a fresh process.

That process calls the flow inside `adopting(run)`: the next top-level flow run takes the
stored run's id, name, tags and parents instead of making a new run, so everything it records
(its states from PENDING on, its task runs, its logs) belongs to the run the service created,
and a subflow is still a new run of its own. `deployment_here()` is what
`headwater.runtime.deployment` reads in such a process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class DeploymentRef:
    id: UUID
    name: str
    version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdoptedRun:
    flow_run_id: UUID
    name: str
    tags: tuple[str, ...] = ()
    parent_flow_run_id: UUID | None = None
    parent_task_run_id: UUID | None = None
    deployment: DeploymentRef | None = None


_next: ContextVar[AdoptedRun | None] = ContextVar("headwater_adopted_run", default=None)
_deployment_here: list[DeploymentRef] = []  # the deployment this process runs a run of


@contextmanager
def adopting(run: AdoptedRun) -> Iterator[None]:
    """The next top-level flow run in this context is `run` (see the module docstring)."""
    token = _next.set(run)
    if run.deployment is not None:
        _deployment_here[:] = [run.deployment]
    try:
        yield
    finally:
        _next.reset(token)


def take_adopted() -> AdoptedRun | None:
    """The run to adopt, once: a second flow called in the same context makes its own run."""
    run = _next.get()
    if run is not None:
        _next.set(None)
    return run


def deployment_here() -> DeploymentRef | None:
    return _deployment_here[0] if _deployment_here else None
