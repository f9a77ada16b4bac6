"""`headwater runs watch`: the newest flow runs, looked at again every `--interval` seconds.

On a terminal it is a live table (rich `Live`), redrawn at each look, with a progress bar of
finished task runs for each running flow run. Anywhere else a redrawn table shows nothing
while it runs (`Live` writes only its last frame, when it stops), so a watch piped to a file
or to `grep` prints a line for every run at the first look, then one for each new run and
each change of state, flushed at once:

    2025-06-01T12:00:03.120+00:00  etl  swift-ocelot  0f1e2d3c-5b6a-4c1d-9e8f-7a6b5c4d3e2f  RUNNING

The time is that of the run's latest recorded state; the state is its type, with its name
after it when the name says more (`PENDING AwaitingConcurrencySlot`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ._source import open_source
from ._text import inert

if TYPE_CHECKING:
    from rich.console import Group
    from rich.text import Text

    from ..api.records import FlowRunInfo
    from ._source import RunSource

_FINISHED = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def watch_runs(args: argparse.Namespace) -> int:
    looks = 1 if args.once else args.iterations
    watch = _watch_live if sys.stdout.isatty() else _watch_lines
    with open_source() as source:
        try:
            watch(source, args.limit, args.interval, looks)
        except KeyboardInterrupt:  # the way to stop watching for good
            pass
    return 0


def _looks(interval: float, looks: int | None) -> Iterator[int]:
    """Count the looks (`None`: until Ctrl-C), sleeping `interval` between two."""
    count = 0
    while looks is None or count < looks:
        if count:
            time.sleep(interval)
        yield count
        count += 1


# -- not a terminal: a line per change -------------------------------------------------------


def _watch_lines(source: RunSource, limit: int, interval: float, looks: int | None) -> None:
    from ..api.records import RunFilter

    seen: dict[str, tuple[str | None, str | None]] = {}
    for _ in _looks(interval, looks):
        for run in reversed(source.list_flow_runs(RunFilter(limit=limit))):  # oldest first
            state = (run.state_type, run.state_name)
            if seen.get(str(run.id)) != state:
                seen[str(run.id)] = state
                print(_line(source, run), flush=True)


def _line(source: RunSource, run: FlowRunInfo) -> str:
    history = source.read_history(run.id)
    at = history[-1].timestamp if history else (run.created or time.time())
    when = datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")
    state = run.state_type or "-"
    if run.state_name and run.state_name.upper() != state:
        state += f" {run.state_name}"
    fields = (when, run.flow_name, run.name, str(run.id), state)
    return "  ".join(inert(field).plain for field in fields)


# -- a terminal: a live table ----------------------------------------------------------------


def _watch_live(source: RunSource, limit: int, interval: float, looks: int | None) -> None:
    from rich.live import Live

    with Live(_view(source, limit), refresh_per_second=4) as live:
        for count in _looks(interval, looks):
            if count:
                live.update(_view(source, limit))


def _view(source: RunSource, limit: int) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from ..api.records import RunFilter
    from ._run_shapes import flow_run_json
    from ._run_views import fmt_duration, short_id, state_text

    runs = source.list_flow_runs(RunFilter(limit=limit))
    table = Table(title=f"headwater flow runs  {datetime.now(timezone.utc):%H:%M:%S} UTC")
    for column in ("id", "flow", "name", "state", "duration", "progress"):
        table.add_column(column)
    for run in runs:
        shaped = flow_run_json(source, run)
        progress = _progress(source, run) if run.state_type == "RUNNING" else Text(f"{run.task_run_count} tasks")
        table.add_row(short_id(shaped["id"]), inert(run.flow_name), inert(run.name), state_text(shaped),
                      fmt_duration(shaped["duration_seconds"]), progress)
    return Group(table)


def _progress(source: RunSource, run: FlowRunInfo) -> Text:
    """A text progress bar of a flow run's finished task runs."""
    from rich.text import Text

    counts = Counter(t.state_type for t in source.list_task_runs(run.id))
    total = sum(counts.values())
    done = sum(counts[t] for t in _FINISHED)
    width = 20
    filled = int(width * done / total) if total else 0
    bar = Text("█" * filled, style="green") + Text("░" * (width - filled), style="dim")
    failed = counts["FAILED"] + counts["CRASHED"]
    return bar + Text(f" {done}/{total}" + (f" ({failed} failed)" if failed else ""))
