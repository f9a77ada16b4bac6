"""Runs as the JSON objects `--json` prints, which the tables are drawn from too.

Times are ISO 8601 UTC. A run another run refers to (a flow run's subflows and parent, a task
run's flow run, upstream and downstream task runs) is shown by a summary with its name, never
as a bare id: `run_ref`.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID

from . import _logs

if TYPE_CHECKING:
    from ..api.records import FlowRunInfo, StateInfo, TaskRunInfo
    from ._source import RunSource

#: Most subflows `show` lists for one run.
_MAX_CHILDREN = 1000


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def _duration(start: float | None, end: float | None) -> float | None:
    if start is None:
        return None
    return (end if end is not None else time.time()) - start


def _parent_id(source: RunSource, run: FlowRunInfo) -> UUID | None:
    from ..api.errors import StateServiceError

    if run.parent_flow_run_id is not None:
        return run.parent_flow_run_id
    if run.parent_task_run_id is not None:
        try:
            return source.read_task_run(run.parent_task_run_id).flow_run_id
        except StateServiceError:
            return None
    return None


def flow_run_json(source: RunSource, run: FlowRunInfo) -> dict[str, Any]:
    parent = _parent_id(source, run)
    return {
        "id": str(run.id), "name": run.name, "flow_name": run.flow_name,
        "state_type": run.state_type, "state_name": run.state_name,
        "parent_id": str(parent) if parent else None,
        "parent_task_run_id": str(run.parent_task_run_id) if run.parent_task_run_id else None,
        "start_time": iso(run.start_time), "end_time": iso(run.end_time),
        "duration_seconds": _duration(run.start_time, run.end_time),
        "task_run_count": run.task_run_count, "tags": list(run.tags),
        "parameters": run.parameters, "host": run.host, "pid": run.pid,
    }


def states_json(states: list[StateInfo]) -> list[dict[str, Any]]:
    return [
        {"type": s.type, "name": s.name, "message": s.message, "timestamp": iso(s.timestamp)}
        for s in states
    ]


def task_run_json(source: RunSource, run: TaskRunInfo) -> dict[str, Any]:
    return {
        "id": str(run.id), "name": run.name, "task_name": run.task_name,
        "state_type": run.state_type, "state_name": run.state_name,
        "start_time": iso(run.start_time), "end_time": iso(run.end_time),
        "duration_seconds": _duration(run.start_time, run.end_time),
        "states": states_json(source.read_history(run.id)),
        "upstream": sorted({str(u) for ids in run.upstream.values() for u in ids}),
        "upstream_by_parameter": {k: [str(u) for u in v] for k, v in run.upstream.items()},
        "host": run.host, "pid": run.pid,
    }


def run_ref(run: FlowRunInfo | TaskRunInfo) -> dict[str, Any]:
    """A run another run refers to: its id with its name, kind and state."""
    from ..api.records import FlowRunInfo

    base = {"id": str(run.id), "name": run.name, "state_type": run.state_type,
            "state_name": run.state_name}
    if isinstance(run, FlowRunInfo):
        return {**base, "kind": "flow", "flow_name": run.flow_name,
                "parent_task_run_id": str(run.parent_task_run_id) if run.parent_task_run_id else None}
    return {**base, "kind": "task", "task_name": run.task_name}


def run_detail(source: RunSource, ident: str) -> dict[str, Any]:
    """`runs show`: the flow run with this id (or unique prefix), else the task run with it."""
    from ..api.errors import RunNotFound

    try:
        return flow_run_detail(source, source.read_flow_run(ident))
    except RunNotFound:
        pass
    try:
        return task_run_detail(source, source.read_task_run(ident))
    except RunNotFound:
        raise RunNotFound(f"no flow run or task run with id {ident!r}") from None


def flow_run_detail(source: RunSource, run: FlowRunInfo) -> dict[str, Any]:
    from ..api.records import RunFilter

    detail = {"kind": "flow", **flow_run_json(source, run)}
    detail["parent"] = _flow_ref(source, UUID(detail["parent_id"])) if detail["parent_id"] else None
    detail["states"] = states_json(source.read_history(run.id))
    detail["task_runs"] = [task_run_json(source, t) for t in source.list_task_runs(run.id)]
    children = source.list_flow_runs(RunFilter(parent_flow_run_id=run.id, limit=_MAX_CHILDREN))
    detail["children"] = [run_ref(c) for c in children]
    detail["logs"], detail["error"] = _logs.ending_json(source, run)
    if run.state_type == "PAUSED":  # what it waits for, and the command that resumes it
        from ._pauses import pause_json

        detail["pause"] = pause_json(run.id)
    return detail


def task_run_detail(source: RunSource, run: TaskRunInfo) -> dict[str, Any]:
    """A task run with its flow run, the task runs it took results from (upstream) and gave
    its result to (downstream, within its flow run), and the subflows it started."""
    from ..api.records import RunFilter

    siblings = {t.id: t for t in source.list_task_runs(run.flow_run_id)} if run.flow_run_id else {}
    upstream_ids = sorted({u for ids in run.upstream.values() for u in ids}, key=str)
    subflows = []
    if run.flow_run_id is not None:
        flt = RunFilter(parent_flow_run_id=run.flow_run_id, limit=_MAX_CHILDREN)
        subflows = [f for f in source.list_flow_runs(flt) if f.parent_task_run_id == run.id]
    detail = {"kind": "task", **task_run_json(source, run), "tags": list(run.tags)}
    detail["flow_run"] = _flow_ref(source, run.flow_run_id) if run.flow_run_id else None
    detail["upstream_runs"] = [_task_ref(source, siblings, u) for u in upstream_ids]
    detail["downstream_runs"] = [
        run_ref(t) for t in siblings.values() if any(run.id in ids for ids in t.upstream.values())
    ]
    detail["subflows"] = [run_ref(f) for f in subflows]
    detail["logs"], detail["error"] = _logs.ending_json(source, run)
    return detail


def _flow_ref(source: RunSource, run_id: UUID) -> dict[str, Any]:
    from ..api.errors import RunNotFound

    try:
        return run_ref(source.read_flow_run(run_id))
    except RunNotFound:  # recorded by id, never itself recorded
        return {"id": str(run_id), "name": None, "kind": "flow", "flow_name": None,
                "state_type": None, "state_name": None, "parent_task_run_id": None}


def _task_ref(source: RunSource, known: dict[UUID, TaskRunInfo], run_id: UUID) -> dict[str, Any]:
    from ..api.errors import RunNotFound

    run = known.get(run_id)
    if run is None:  # an upstream from another flow run (a parent flow's task, say)
        try:
            run = source.read_task_run(run_id)
        except RunNotFound:
            return {"id": str(run_id), "name": None, "kind": "task", "task_name": None,
                    "state_type": None, "state_name": None}
    return run_ref(run)
