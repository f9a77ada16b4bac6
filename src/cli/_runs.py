"""`headwater runs ls | show | logs | watch`: inspect recorded flow runs (`logs`: `_logs.py`).

The data comes from the server at `HEADWATER_API_URL` when it is set (a `StateClient`), else
straight from the SQLite database under `HEADWATER_HOME`, opened read-only. Both expose the
same read methods, so every verb is written once against `RunSource`.

`--json` prints machine-readable output (times ISO 8601 UTC); otherwise rich tables. Every
run shows where it ran: the host and pid of the process that ran it (for a task run handed to
a worker, that worker's; the latest attempt's when a retry ran elsewhere). Names,
state names and messages are whatever a flow's author (or its parameters) made them: they
are shown as plain text (`_inert`), with control characters escaped, so a terminal escape
in a run name is printed, not obeyed, and rich markup in one is shown, not applied.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Protocol
from uuid import UUID

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..api.client import StateClient
from ..api.dbfile import storage_error
from ..api.errors import StateServiceError
from ..api.log_records import LogPage
from ..api.records import FlowRunInfo, RunFilter, StateInfo, TaskRunInfo
from ..api.settings import get_settings
from ..api.storage import Storage
from . import _logs
from ._text import inert

_inert = inert  # the name `_cache` and `_concurrency` import it by

_STYLE = {
    "COMPLETED": "green", "FAILED": "red", "CRASHED": "bold red", "CANCELLED": "yellow",
    "RUNNING": "cyan", "PENDING": "white", "SCHEDULED": "blue", "PAUSED": "magenta",
}  # fmt: skip


class RunSource(Protocol):
    """What the verbs read; `StateClient` and a read-only `Storage` both provide it."""

    def list_flow_runs(self, flt: RunFilter = ...) -> list[FlowRunInfo]: ...
    def read_flow_run(self, ident: UUID | str) -> FlowRunInfo: ...
    def read_task_run(self, ident: UUID | str) -> TaskRunInfo: ...
    def list_task_runs(self, flow_run_id: UUID) -> list[TaskRunInfo]: ...
    def read_history(self, run_id: UUID) -> list[StateInfo]: ...
    def read_logs(
        self, run_id: UUID | str, *, level: int | str | None = ..., task: str | None = ...,
        after_seq: int | None = ..., limit: int = ..., tail: bool = ...,
    ) -> LogPage: ...


@contextmanager
def open_source() -> Iterator[RunSource]:
    settings = get_settings()
    if settings.api_url:
        with StateClient(settings.api_url, retry_for=5.0) as client:
            yield client
    else:
        yield Storage(settings.db_path, read_only=True)


def register(subparsers: Any) -> None:
    runs = subparsers.add_parser("runs", help="inspect recorded flow runs")
    verbs = runs.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("ls", help="list flow runs, newest first")
    ls.add_argument("--state", help="only runs in this state type, e.g. RUNNING")
    ls.add_argument("--flow", help="only runs of this flow")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    ls.set_defaults(handler=_guard(list_runs))
    show = verbs.add_parser("show", help="one flow run: states, task runs, parent and children")
    show.add_argument("id", help="flow run id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="print a JSON object")
    show.set_defaults(handler=_guard(show_run))
    _logs.register(verbs, _guard(lambda args: _logs.print_logs(args, open_source)))
    watch = verbs.add_parser("watch", help="live view of recent flow runs (Ctrl-C to exit)")
    watch.add_argument("--limit", type=int, default=15)
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    watch.add_argument("--iterations", type=int, default=None, help="stop after N refreshes")
    watch.add_argument("--once", action="store_true", help="render once and exit")
    watch.set_defaults(handler=_guard(watch_runs))
    runs.set_defaults(handler=lambda args: runs.print_help() or 2)


def _guard(verb: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(verb(args) or 0)
        except (StateServiceError, ValueError) as exc:
            print(f"headwater runs: {exc}", file=sys.stderr)
            return 1
        except sqlite3.Error as exc:  # a read of a damaged database, say
            print(f"headwater runs: {storage_error(get_settings().db_path, exc)}", file=sys.stderr)
            return 1

    return run


# -- shaping ---------------------------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def _duration(start: float | None, end: float | None) -> float | None:
    if start is None:
        return None
    return (end if end is not None else time.time()) - start


def _parent_id(source: RunSource, run: FlowRunInfo) -> UUID | None:
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


def _states_json(states: list[StateInfo]) -> list[dict[str, Any]]:
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
        "states": _states_json(source.read_history(run.id)),
        "upstream": sorted({str(u) for ids in run.upstream.values() for u in ids}),
        "upstream_by_parameter": {k: [str(u) for u in v] for k, v in run.upstream.items()},
        "host": run.host, "pid": run.pid,
    }


def flow_run_detail(source: RunSource, ident: str) -> dict[str, Any]:
    run = source.read_flow_run(ident)
    detail = flow_run_json(source, run)
    detail["states"] = _states_json(source.read_history(run.id))
    detail["task_runs"] = [task_run_json(source, t) for t in source.list_task_runs(run.id)]
    children = source.list_flow_runs(RunFilter(parent_flow_run_id=run.id, limit=1000))
    detail["children"] = [str(c.id) for c in children]
    detail["logs"], detail["error"] = _logs.ending_json(source, run)
    return detail


# -- verbs -----------------------------------------------------------------------------------


def list_runs(args: argparse.Namespace) -> int:
    with open_source() as source:
        flt = RunFilter(state_type=args.state, flow_name=args.flow, limit=args.limit)
        runs = [flow_run_json(source, r) for r in source.list_flow_runs(flt)]
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        Console().print(_runs_table(runs, "flow runs"))
    return 0


def show_run(args: argparse.Namespace) -> int:
    with open_source() as source:
        detail = flow_run_detail(source, args.id)
    if args.json:
        print(json.dumps(detail, indent=2))
        return 0
    console = Console()
    console.print(_runs_table([detail], f"flow run {detail['id']}"))
    console.print(_timeline(detail["states"], "state timeline"))
    tasks = Table(title=f"task runs ({len(detail['task_runs'])})")
    for column in ("id", "name", "state", "duration", "host (pid)", "upstream"):
        tasks.add_column(column)
    for t in detail["task_runs"]:
        tasks.add_row(t["id"][:8], _inert(t["name"]), _state_text(t), _fmt_duration(t["duration_seconds"]),
                      _where(t), ", ".join(u[:8] for u in t["upstream"]))
    console.print(tasks)
    console.print(f"parent: {detail['parent_id'] or '-'}    children: {', '.join(detail['children']) or '-'}")
    _logs.print_ending(console, detail["logs"], detail["error"])
    return 0


def watch_runs(args: argparse.Namespace) -> int:
    iterations = 1 if args.once else args.iterations
    count = 0
    with open_source() as source, Live(_watch_view(source, args.limit), refresh_per_second=4) as live:
        try:
            while iterations is None or count < iterations - 1:
                time.sleep(args.interval)
                live.update(_watch_view(source, args.limit))
                count += 1
        except KeyboardInterrupt:
            pass
    return 0


# -- rendering -------------------------------------------------------------------------------


def _state_text(run: dict[str, Any]) -> Text:
    type_ = run["state_type"] or "-"
    return _inert(run["state_name"] or type_, _STYLE.get(type_, ""))


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _runs_table(runs: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("id", "name", "flow", "state", "started (UTC)", "duration", "tasks", "host (pid)"):
        table.add_column(column)
    for r in runs:
        started = (r["start_time"] or "-")[:19].replace("T", " ")
        table.add_row(r["id"][:8], _inert(r["name"]), _inert(r["flow_name"]), _state_text(r), started,
                      _fmt_duration(r["duration_seconds"]), str(r["task_run_count"]), _where(r))
    return table


def _where(run: dict[str, Any]) -> Text:
    """Where a run ran, as `host (pid)`; the host is any machine's choice, so shown inert."""
    if run["host"] is None and run["pid"] is None:
        return Text("-")
    return _inert(run["host"] or "?") + Text(f" ({run['pid'] if run['pid'] is not None else '?'})")


def _timeline(states: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("time (UTC)", "state", "message"):
        table.add_column(column)
    for s in states:
        table.add_row(s["timestamp"][11:23], _inert(s["name"], _STYLE.get(s["type"], "")),
                      _inert(s["message"]))
    return table


def _progress(source: RunSource, run: FlowRunInfo) -> Text:
    """A text progress bar of a flow run's finished task runs."""
    counts = Counter(t.state_type for t in source.list_task_runs(run.id))
    total = sum(counts.values())
    done = sum(counts[t] for t in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"))
    width = 20
    filled = int(width * done / total) if total else 0
    bar = Text("█" * filled, style="green") + Text("░" * (width - filled), style="dim")
    failed = counts["FAILED"] + counts["CRASHED"]
    return bar + Text(f" {done}/{total}" + (f" ({failed} failed)" if failed else ""))


def _watch_view(source: RunSource, limit: int) -> Group:
    runs = source.list_flow_runs(RunFilter(limit=limit))
    table = Table(title=f"headwater flow runs  {datetime.now(timezone.utc):%H:%M:%S} UTC")
    for column in ("id", "flow", "name", "state", "duration", "progress"):
        table.add_column(column)
    for run in runs:
        shaped = flow_run_json(source, run)
        progress = _progress(source, run) if run.state_type == "RUNNING" else Text(f"{run.task_run_count} tasks")
        table.add_row(shaped["id"][:8], _inert(run.flow_name), _inert(run.name), _state_text(shaped),
                      _fmt_duration(shaped["duration_seconds"]), progress)
    return Group(table)
