"""`run_deployment`: a flow run of a deployment, from anywhere, by one call.

The service creates the run SCHEDULED (checking the parameters against the deployment's
schema, and the idempotency key) and hands it to a worker of its pool, or to the `serve`
process that registered it. Called inside a flow (or a task), the new run is that run's
child. `timeout` says how long to wait for the run to end: None waits for as long as it
takes, 0 returns at once with the run as created.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from ..api.client import StateClient
from ..api.records import FlowRunInfo
from ..runtime.context import flow_run_var, task_run_var
from ..runtime.names import generate_run_name
from .connection import deploy_client, service_target

#: How often a caller waiting for the end reads the run (a person, a parent flow, a test).
_POLL_FIRST, _POLL_MOST = 0.02, 1.0
_ENDED = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def run_deployment(
    name: str | UUID,
    parameters: dict[str, Any] | None = None,
    timeout: float | None = None,
    scheduled_time: datetime | float | None = None,
    idempotency_key: str | None = None,
    tags: Iterable[str] | None = None,
    *,
    flow_run_name: str | None = None,
) -> FlowRunInfo:
    """Run the deployment `name` (`flow-name/deployment-name`, or its id) and return its flow
    run: as it ended, or as it is when `timeout` seconds passed (0: at once)."""
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None (wait for the end), 0 (do not wait) or positive, not {timeout}")
    when = scheduled_time.timestamp() if isinstance(scheduled_time, datetime) else scheduled_time
    parent_flow = flow_run_var.get()
    parent_task = task_run_var.get()
    with deploy_client() as client:
        created = client.create_run(
            name, name=flow_run_name or generate_run_name(), parameters=parameters, idempotency_key=idempotency_key,
            scheduled_time=when, tags=list(tags or ()),
            parent_flow_run_id=parent_flow.flow_run.id if parent_flow else None,
            parent_task_run_id=parent_task.task_run.id if parent_task else None,
        )  # fmt: skip
    return wait_for_run(created.flow_run_id, timeout)


def wait_for_run(flow_run_id: UUID, timeout: float | None) -> FlowRunInfo:
    """The run once it ended, or as it is when `timeout` passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = _POLL_FIRST
    with StateClient(service_target()) as reader:
        while True:
            run = reader.read_flow_run(flow_run_id)
            if run.state_type in _ENDED or (deadline is not None and time.monotonic() >= deadline):
                return run
            wait = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(wait)
            pause = min(pause * 1.5, _POLL_MOST)
