"""`headwater runs logs ID [--follow] [--level L] [--task NAME] [--json]`, and the end of
`runs show` (the last log lines, and a failed run's error with its traceback).

Lines come from the server at `HEADWATER_API_URL` (`read_logs`, and for `--follow` the
server's `FollowLogs` push) or, with no server, from the home's database read directly.
`--follow` without a server has nobody to push: it reads the database again every
`_POLL_SECONDS` (0.2 s) until the run is in a final state, then once more. That poll is only
for this server-less case; a flow's embedded server cannot be reached from another process.

A flow run's lines include its task runs' and its subflows'. Without `--follow` every line
is read, then shown in timestamp order (lines of two processes may commit slightly out of
it); `--follow` shows them as they are committed. `--json` prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from uuid import UUID

from rich.console import Console
from rich.text import Text

from ._source import open_source
from ._text import console as make_console
from ._text import inert

if TYPE_CHECKING:
    from ..api.log_records import LogLine, LogPage
    from ..api.records import FlowRunInfo, StateInfo, TaskRunInfo

_POLL_SECONDS = 0.2
_FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
_LEVEL_STYLE = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}
#: Lines `runs show` ends with.
SHOW_LINES = 20


class LogSource(Protocol):
    """What this module reads: a `StateClient` or a read-only `Storage`."""

    def read_flow_run(self, ident: UUID | str) -> FlowRunInfo: ...
    def read_task_run(self, ident: UUID | str) -> TaskRunInfo: ...
    def read_history(self, run_id: UUID) -> list[StateInfo]: ...
    def read_logs(
        self, run_id: UUID | str, *, level: int | str | None = ..., task: str | None = ...,
        after_seq: int | None = ..., limit: int = ..., tail: bool = ...,
    ) -> LogPage: ...


@runtime_checkable
class _Pusher(Protocol):
    """A source a server pushes new lines through (`StateClient`); checked by its method, so
    reading the database never imports the client to tell the two apart."""

    def follow_logs(self, run_id: UUID | str, *, level: int | str | None = ...,
                    task: str | None = ...) -> Iterator[LogLine]: ...


def print_logs(args: argparse.Namespace) -> int:
    console = make_console(highlight=False, soft_wrap=True)
    with open_source() as source:
        if args.follow:
            lines = _follow(source, args.id, args.level, args.task)
        else:
            lines = iter(sorted(_read_all(source, args.id, args.level, args.task), key=lambda ln: ln.timestamp))
        for ln in lines:
            if args.json:
                print(json.dumps(line_json(ln)), flush=True)
            else:
                console.print(render(ln))
    return 0


def _read_all(source: LogSource, run_id: str, level: str | None, task: str | None) -> Iterator[LogLine]:
    after: int | None = None
    while True:
        page = source.read_logs(run_id, level=level, task=task, after_seq=after, limit=1000)
        yield from page.lines
        if not page.lines:
            return
        after = page.next_seq


def _follow(source: LogSource, run_id: str, level: str | None, task: str | None) -> Iterator[LogLine]:
    if isinstance(source, _Pusher):
        yield from source.follow_logs(run_id, level=level, task=task)
        return
    after, final_seen = 0, False
    while True:  # no server to push: read the database again (module docstring)
        page = source.read_logs(run_id, level=level, task=task, after_seq=after, limit=1000)
        yield from page.lines
        after = page.next_seq
        if page.lines:
            continue
        if final_seen:
            return
        final_seen = _state_of(source, run_id) in _FINAL
        if not final_seen:
            time.sleep(_POLL_SECONDS)


def _state_of(source: LogSource, run_id: str) -> str | None:
    from ..api.errors import RunNotFound

    try:
        return source.read_flow_run(run_id).state_type
    except RunNotFound:
        return source.read_task_run(run_id).state_type


# -- the end of `runs show` ------------------------------------------------------------------


def ending_json(source: LogSource, run: FlowRunInfo | TaskRunInfo) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The run's last `SHOW_LINES` log lines, and for a failed run its error: the final state's
    message and the traceback of its last logged exception (None when it did not fail)."""
    lines = [line_json(ln) for ln in source.read_logs(run.id, limit=SHOW_LINES, tail=True).lines]
    if run.state_type not in {"FAILED", "CRASHED"}:
        return lines, None
    errors = source.read_logs(run.id, level="ERROR", limit=200, tail=True).lines
    traced = [ln for ln in errors if ln.exception]
    history = source.read_history(run.id)
    message = next((s.message for s in reversed(history) if s.type == run.state_type), None)
    return lines, {
        "state": run.state_name, "message": message,
        "traceback": traced[-1].exception if traced else None,
        "label": traced[-1].label if traced else None,
    }


def print_ending(console: Console, lines: list[dict[str, Any]], error: dict[str, Any] | None) -> None:
    console.print(Text(f"last log lines ({len(lines)})", style="bold"))
    for ln in lines:
        console.print(_render_json(ln))
    if error is not None:
        console.print(Text(f"error ({error['state']})", style="bold red"))
        if error["message"]:
            console.print(inert(error["message"], "red"))
        if error["traceback"]:
            console.print(_indented(error["traceback"]))


# -- shaping and rendering -------------------------------------------------------------------


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def line_json(ln: LogLine) -> dict[str, Any]:
    return {
        "seq": ln.seq, "time": _time(ln.timestamp), "level": ln.level_name, "run": ln.label,
        "flow_run_id": str(ln.flow_run_id),
        "task_run_id": str(ln.task_run_id) if ln.task_run_id else None,
        "logger": ln.logger, "message": ln.message, "exception": ln.exception,
    }


def render(ln: LogLine) -> Text:
    return _render_json(line_json(ln))


def _render_json(ln: dict[str, Any]) -> Text:
    """`time  LEVEL  run  logger  message`, the traceback indented below; the flow run's own
    lines are labelled `flow`. Everything a run wrote is shown inert (`_text.inert`)."""
    level = ln["level"]
    out = Text(ln["time"][11:23] + " ", style="dim")
    out += Text(f"{level:<8} ", style=_LEVEL_STYLE.get(level, ""))
    out += inert(ln["run"] or "flow", "cyan") + Text(" ")
    out += inert(ln["logger"], "dim") + Text(" ") + inert(ln["message"])
    if ln["exception"]:
        out += Text("\n") + _indented(ln["exception"])
    return out


def _indented(trace: str) -> Text:
    return Text("\n").join(inert("    " + row, "red") for row in trace.rstrip("\n").splitlines())
