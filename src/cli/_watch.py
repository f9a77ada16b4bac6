"""`headwater runs watch`: a live table (rich `Live`) of the newest flow runs, looked at again
every `--interval` seconds, with a progress bar of finished task runs for each running one.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
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
    from rich.live import Live

    iterations = 1 if args.once else args.iterations
    count = 0
    with open_source() as source, Live(_view(source, args.limit), refresh_per_second=4) as live:
        try:
            while iterations is None or count < iterations - 1:
                time.sleep(args.interval)
                live.update(_view(source, args.limit))
                count += 1
        except KeyboardInterrupt:
            pass
    return 0


def _view(source: RunSource, limit: int) -> Group:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from ..api.records import RunFilter
    from ._run_shapes import flow_run_json
    from ._run_views import fmt_duration, state_text

    runs = source.list_flow_runs(RunFilter(limit=limit))
    table = Table(title=f"headwater flow runs  {datetime.now(timezone.utc):%H:%M:%S} UTC")
    for column in ("id", "flow", "name", "state", "duration", "progress"):
        table.add_column(column)
    for run in runs:
        shaped = flow_run_json(source, run)
        progress = _progress(source, run) if run.state_type == "RUNNING" else Text(f"{run.task_run_count} tasks")
        table.add_row(shaped["id"][:8], inert(run.flow_name), inert(run.name), state_text(shaped),
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
