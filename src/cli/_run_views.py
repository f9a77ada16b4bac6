"""`headwater runs ls` and `runs show`: runs as JSON (`_run_shapes`) or as rich tables.

`show` takes a flow run's id or a task run's (or a unique prefix of either). Runs a run refers
to are shown by name with their short id, never as bare ids. Everything a run's author or its
parameters named is shown inert (`_text.inert`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import _logs
from ._run_shapes import flow_run_json, run_detail
from ._source import open_source
from ._text import console as make_console
from ._text import inert

STATE_STYLE = {
    "COMPLETED": "green", "FAILED": "red", "CRASHED": "bold red", "CANCELLED": "yellow",
    "RUNNING": "cyan", "PENDING": "white", "SCHEDULED": "blue", "PAUSED": "magenta", "CANCELLING": "yellow",
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
        detail = run_detail(source, args.id)
    if args.json:
        print(json.dumps(detail, indent=2))
    elif detail["kind"] == "flow":
        _print_flow_run(make_console(), detail)
    else:
        _print_task_run(make_console(), detail)
    return 0


def _print_flow_run(console: Console, detail: dict[str, Any]) -> None:
    console.print(_runs_table([detail], f"flow run {detail['id']}"))
    console.print(_timeline(detail["states"], "state timeline"))
    if detail.get("pause"):
        from ._pauses import print_pause

        print_pause(console, detail["pause"])
    names = {t["id"]: t["name"] for t in detail["task_runs"]}
    tasks = Table(title=f"task runs ({len(detail['task_runs'])})")
    for column in ("id", "name", "state", "duration", "host (pid)", "upstream"):
        tasks.add_column(column)
    for t in detail["task_runs"]:
        upstream = Text(", ").join(_ref(names.get(u), u) for u in t["upstream"])
        tasks.add_row(short_id(t["id"]), inert(t["name"]), state_text(t), fmt_duration(t["duration_seconds"]),
                      _where(t), upstream)
    console.print(tasks)
    console.print(Text("parent: ") + (_ref(detail["parent"]["name"], detail["parent"]["id"])
                                      if detail["parent"] else Text("-")))
    if detail["children"]:
        console.print(_subflows_table(detail["children"], names))
    _logs.print_ending(console, detail["logs"], detail["error"])


def _print_task_run(console: Console, detail: dict[str, Any]) -> None:
    table = Table(title=f"task run {detail['id']}")
    for column in ("id", "name", "task", "state", "started (UTC)", "duration", "host (pid)"):
        table.add_column(column)
    table.add_row(short_id(detail["id"]), inert(detail["name"]), inert(detail["task_name"]), state_text(detail),
                  _started(detail), fmt_duration(detail["duration_seconds"]), _where(detail))
    console.print(table)
    flow_run = detail["flow_run"]
    console.print(Text("flow run: ") + (
        _ref(flow_run["name"], flow_run["id"], full=True) + Text(" of flow ") + inert(flow_run["flow_name"])
        if flow_run else Text("- (called outside a flow)")))
    console.print(_timeline(detail["states"], "state timeline"))
    by_id = {r["id"]: r for r in detail["upstream_runs"]}
    for label, runs in (("upstream", detail["upstream_runs"]), ("downstream", detail["downstream_runs"])):
        line = Text(f"{label}: ")
        line += Text(", ").join(_ref(r["name"], r["id"]) for r in runs) if runs else Text("-")
        console.print(line)
    for parameter, ids in detail["upstream_by_parameter"].items():
        console.print(Text(f"  {parameter} <- ") + Text(", ").join(
            _ref(by_id[u]["name"] if u in by_id else None, u) for u in ids))
    if detail["subflows"]:
        console.print(_subflows_table(detail["subflows"], {detail["id"]: detail["name"]}))
    _logs.print_ending(console, detail["logs"], detail["error"])


# -- rendering -------------------------------------------------------------------------------


def state_text(run: dict[str, Any]) -> Text:
    type_ = run["state_type"] or "-"
    return inert(run["state_name"] or type_, STATE_STYLE.get(type_, ""))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _ref(name: str | None, run_id: str, *, full: bool = False) -> Text:
    """A run another run refers to: `name (1a2b3c4d)`, or the whole id with `full`; a run
    recorded only by id is shown as `? (1a2b3c4d)`."""
    return inert(name or "?") + Text(f" ({run_id if full else short_id(run_id)})")


def short_id(run_id: str) -> str:
    """The 8 digits that tell a run apart: a flow run's first (its id is random), a task
    run's last (its id starts with the time it was made: `runtime/runs.py`). `runs show`
    takes either."""
    return run_id[-8:] if run_id[14:15] == "7" else run_id[:8]


def _started(run: dict[str, Any]) -> str:
    return (run["start_time"] or "-")[:19].replace("T", " ")


def _runs_table(runs: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("id", "name", "flow", "state", "started (UTC)", "duration", "tasks", "host (pid)"):
        table.add_column(column)
    for r in runs:
        table.add_row(short_id(r["id"]), inert(r["name"]), inert(r["flow_name"]), state_text(r), _started(r),
                      fmt_duration(r["duration_seconds"]), str(r["task_run_count"]), _where(r))
    return table


def _subflows_table(children: list[dict[str, Any]], task_names: dict[str, str]) -> Table:
    """The flow runs a run started, with the task run each was called from, if any."""
    table = Table(title=f"subflows ({len(children)})")
    for column in ("id", "name", "flow", "state", "called from"):
        table.add_column(column)
    for c in children:
        caller = c["parent_task_run_id"]
        table.add_row(short_id(c["id"]), inert(c["name"]), inert(c["flow_name"]), state_text(c),
                      _ref(task_names.get(caller), caller) if caller else Text("-"))
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
