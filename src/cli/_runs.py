"""`headwater runs ls | show | logs | watch | cancel | resume | reject`: inspect recorded flow
runs and task runs, cancel a running flow run (`_cancel`), resume or reject a paused one
(`_pauses`).

This module only declares the verbs and their options; each handler imports its module when
it runs (`_run_views`: ls and show, `_logs`, `_watch`), so no verb pays for another's imports.

The data comes from the server at `HEADWATER_API_URL` when it is set, else straight from the
SQLite database under `HEADWATER_HOME`, opened read-only (`_source.py`). `--json` prints
machine-readable output (times ISO 8601 UTC); otherwise rich tables, never cut to a width when
stdout is not a terminal. Every run shows where it ran: the host and pid of the process that
ran it (for a task run handed to a worker, that worker's; the latest attempt's when a retry
ran elsewhere). Names, state names and messages are whatever a flow's author (or its
parameters) made them: they are shown as plain text (`_text.inert`), with control characters
escaped, so a terminal escape in a run name is printed, not obeyed, and rich markup in one is
shown, not applied.

Options that take one of a fixed set of values (`ls --state`, `logs --level`) accept them in
any case and refuse anything else, naming the option and the values it takes, rather than
quietly match nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from .. import StateType

#: The state types `ls --state` takes, in lifecycle order.
STATE_TYPES = tuple(s.name for s in StateType)
#: The level names `logs --level` takes (those logging knows, as the server does), lowest first.
LOG_LEVELS = tuple(name for name, _ in sorted(logging.getLevelNamesMapping().items(), key=lambda kv: kv[1]))


def register(subparsers: Any) -> None:
    runs = subparsers.add_parser("runs", help="inspect recorded flow runs and task runs")
    verbs = runs.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("ls", help="list flow runs, newest first")
    ls.add_argument("--state", type=one_of(STATE_TYPES), metavar="STATE",
                    help=f"only runs in this state type: {', '.join(STATE_TYPES)} (any case)")
    ls.add_argument("--flow", help="only runs of this flow")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    ls.set_defaults(handler=_guard("_run_views", "list_runs"))
    show = verbs.add_parser(
        "show", help="one flow run (states, task runs, parent, subflows) or task run (states, "
                     "its flow run, upstream and downstream runs)")
    show.add_argument("id", help="flow run or task run id, or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="print a JSON object")
    show.set_defaults(handler=_guard("_run_views", "show_run"))
    logs = verbs.add_parser("logs", help="a run's log lines (a flow run's include its task runs')")
    logs.add_argument("id", help="flow or task run id, or a unique prefix of it")
    logs.add_argument("--follow", "-f", action="store_true", help="stream new lines until the run ends")
    logs.add_argument("--level", type=one_of(LOG_LEVELS, numbers=True), metavar="LEVEL",
                      help="only lines at this level or above: DEBUG, INFO, WARNING, ERROR, "
                           "CRITICAL (any case) or a number")
    logs.add_argument("--task", help="only lines of task runs of this task (or this task run name)")
    logs.add_argument("--json", action="store_true", help="one JSON object per line")
    logs.set_defaults(handler=_guard("_logs", "print_logs"))
    watch = verbs.add_parser(
        "watch", help="recent flow runs as they change: a live table on a terminal, else a line "
                      "per new run and change of state (Ctrl-C to exit)")
    watch.add_argument("--limit", type=int, default=15)
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between looks")
    watch.add_argument("--iterations", type=int, default=None, help="stop after N looks")
    watch.add_argument("--once", action="store_true", help="look once and exit")
    watch.set_defaults(handler=_guard("_watch", "watch_runs"))
    cancel = verbs.add_parser(
        "cancel", help="cancel a running flow run (and its running subflows): its process is "
                       "told at once, interrupts its task runs and ends it CANCELLED")
    cancel.add_argument("id", help="flow run id, or a unique prefix of it")
    cancel.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                        help="how long its process has to stop before the state service ends "
                             "the run CANCELLED itself (default 30 s, the service's CANCEL_DEADLINE)")
    cancel.add_argument("--no-wait", action="store_true",
                        help="return once the request is recorded, without waiting for the end")
    cancel.add_argument("--by", help="who asks (recorded in the run's history)")
    cancel.set_defaults(handler=_guard("_cancel", "cancel_run"))
    resume = verbs.add_parser(
        "resume", help="resume a paused flow run, with the input it waits for: validated by the "
                       "state service, refused (the run stays paused) if it does not fit")
    resume.add_argument("id", help="flow run id, or a unique prefix of it")
    resume.add_argument("--input", metavar="JSON", help="the input as JSON: an object of fields, or a "
                                                        "builtin's value (--input 5)")
    resume.add_argument("--set", action="append", metavar="FIELD=VALUE",
                        help="one field of the input (repeat); JSON unless the field is a string")
    resume.add_argument("--by", help="who resumes (recorded in the run's history; default: your user)")
    resume.set_defaults(handler=_guard("_pauses", "resume_run"))
    reject = verbs.add_parser(
        "reject", help="reject a paused flow run instead of resuming it: it ends FAILED and the "
                       "flow's paused call raises PauseRejected (its on_failure hooks run)")
    reject.add_argument("id", help="flow run id, or a unique prefix of it")
    reject.add_argument("--reason", metavar="TEXT", help="why (recorded in the run's history)")
    reject.add_argument("--by", help="who rejects (recorded in the run's history; default: your user)")
    reject.set_defaults(handler=_guard("_pauses", "reject_run"))
    runs.set_defaults(handler=lambda args: runs.print_help() or 2)


def one_of(values: Sequence[str], *, numbers: bool = False) -> Callable[[str], str]:
    """An argparse `type` for an option that takes one of `values` in any case (given back in
    upper case), or with `numbers` a whole number too; argparse refuses anything else with
    the option's name and this message."""

    def parse(text: str) -> str:
        value = text.strip().upper()
        if value in values or (numbers and value.isdigit()):
            return value
        also = ", or a number" if numbers else ""
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(values)}{also})")

    return parse


def _guard(module: str, verb: str) -> Callable[[argparse.Namespace], int]:
    """The handler of a verb: imports `module` when the verb runs, calls `verb` in it, and
    turns the errors a read can meet into one line on stderr and status 1."""

    def run(args: argparse.Namespace) -> int:
        import sqlite3

        from ..api.errors import StateServiceError

        try:
            return int(getattr(import_module(f"{__package__}.{module}"), verb)(args) or 0)
        except (StateServiceError, ValueError) as exc:
            print(f"headwater runs: {exc}", file=sys.stderr)
            return 1
        except sqlite3.Error as exc:  # a read of a damaged database, say
            from ..api.dbfile import storage_error
            from ..api.settings import get_settings

            print(f"headwater runs: {storage_error(get_settings().db_path, exc)}", file=sys.stderr)
            return 1

    return run
