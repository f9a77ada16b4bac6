"""`headwater runs ls` and `runs show`: runs as JSON (`_run_shapes`) or as rich tables.
Everything a run's author or its parameters named is shown inert (`_text.inert`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table
from rich.text import Text

from . import _logs
from ._run_shapes import flow_run_detail, flow_run_json
from ._source import open_source
from ._text import console as make_console
from ._text import inert

STATE_STYLE = {
    "COMPLETED": "green", "FAILED": "red", "CRASHED": "bold red", "CANCELLED": "yellow",
    "RUNNING": "cyan", "PENDING": "white", "SCHEDULED": "blue", "PAUSED": "magenta",
}  # fmt: skip


def list_runs(args: argparse.Namespace) -> int:
    from ..api.records import RunFilter

    with open_source() as source:
        flt = RunFilter(state_type=args.state, flow_name=args.flow, limit=args.limit)
        runs = [flow_run_json(source, r) for r in source.list_flow_runs(flt)]
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        make_console().print(_runs_table(runs, "flow runs"))
    return 0


def show_run(args: argparse.Namespace) -> int:
    with open_source() as source:
        detail = flow_run_detail(source, args.id)
    if args.json:
        print(json.dumps(detail, indent=2))
        return 0
    console = make_console()
    console.print(_runs_table([detail], f"flow run {detail['id']}"))
    console.print(_timeline(detail["states"], "state timeline"))
    tasks = Table(title=f"task runs ({len(detail['task_runs'])})")
    for column in ("id", "name", "state", "duration", "host (pid)", "upstream"):
        tasks.add_column(column)
    for t in detail["task_runs"]:
        tasks.add_row(t["id"][:8], inert(t["name"]), state_text(t), fmt_duration(t["duration_seconds"]),
                      _where(t), ", ".join(u[:8] for u in t["upstream"]))
    console.print(tasks)
    console.print(f"parent: {detail['parent_id'] or '-'}    children: {', '.join(detail['children']) or '-'}")
    _logs.print_ending(console, detail["logs"], detail["error"])
    return 0


# -- rendering -------------------------------------------------------------------------------


def state_text(run: dict[str, Any]) -> Text:
    type_ = run["state_type"] or "-"
    return inert(run["state_name"] or type_, STATE_STYLE.get(type_, ""))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _started(run: dict[str, Any]) -> str:
    return (run["start_time"] or "-")[:19].replace("T", " ")


def _runs_table(runs: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("id", "name", "flow", "state", "started (UTC)", "duration", "tasks", "host (pid)"):
        table.add_column(column)
    for r in runs:
        table.add_row(r["id"][:8], inert(r["name"]), inert(r["flow_name"]), state_text(r), _started(r),
                      fmt_duration(r["duration_seconds"]), str(r["task_run_count"]), _where(r))
    return table


def _where(run: dict[str, Any]) -> Text:
    """Where a run ran, as `host (pid)`; the host is any machine's choice, so shown inert."""
    if run["host"] is None and run["pid"] is None:
        return Text("-")
    return inert(run["host"] or "?") + Text(f" ({run['pid'] if run['pid'] is not None else '?'})")


def _timeline(states: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("time (UTC)", "state", "message"):
        table.add_column(column)
    for s in states:
        table.add_row(s["timestamp"][11:23], inert(s["name"], STATE_STYLE.get(s["type"], "")),
                      inert(s["message"]))
    return table
