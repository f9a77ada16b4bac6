"""Runs as the JSON objects `--json` prints, which the tables are drawn from too.
Times are ISO 8601 UTC."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID

from . import _logs

if TYPE_CHECKING:
    from ..api.records import FlowRunInfo, StateInfo, TaskRunInfo
    from ._source import RunSource

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


def flow_run_detail(source: RunSource, ident: str) -> dict[str, Any]:
    from ..api.records import RunFilter

    run = source.read_flow_run(ident)
    detail = flow_run_json(source, run)
    detail["states"] = states_json(source.read_history(run.id))
    detail["task_runs"] = [task_run_json(source, t) for t in source.list_task_runs(run.id)]
    children = source.list_flow_runs(RunFilter(parent_flow_run_id=run.id, limit=1000))
    detail["children"] = [str(c.id) for c in children]
    detail["logs"], detail["error"] = _logs.ending_json(source, run)
    return detail
