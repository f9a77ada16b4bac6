"""`headwater runs cancel ID`: cancel a flow run and, unless `--no-wait`, wait for its end.

Where the request goes (the server at `HEADWATER_API_URL`, else the database under
`HEADWATER_HOME` and the owning process's doorbell) is `api/control_direct.py`'s business.
Waiting, it prints the run's end and its final state's message: the task runs its process
interrupted, or that the state service ended it at the deadline. Exit status: 0 when the run ended CANCELLED (or, with `--no-wait`, once the request is
recorded), 1 when it was refused (an unknown id, a run that already finished) or the run
ended another way first.
"""

from __future__ import annotations

import argparse
import getpass
from uuid import UUID

from ..api.control_client import CancelRequest
from ..api.control_direct import cancel_here_or_there
from ._source import open_source


def cancel_run(args: argparse.Namespace) -> int:
    by = args.by or _user()
    outcome = cancel_here_or_there(args.id, deadline_seconds=args.deadline, by=by, wait=not args.no_wait)
    if isinstance(outcome, CancelRequest):
        what = "already being cancelled" if outcome.already else "cancelling"
        extra = f" (and {len(outcome.cancelled) - 1} subflow run(s))" if len(outcome.cancelled) > 1 else ""
        print(f"flow run {outcome.flow_run_id}: {what}{extra}")
        return 0
    print(f"flow run {outcome.id}: {outcome.state_type} ({outcome.state_name})")
    message = _final_message(outcome.id)
    if message:
        print(f"  {message}")  # what its process interrupted, or why the service ended it
    return 0 if outcome.state_type == "CANCELLED" else 1


def _final_message(run_id: UUID) -> str | None:
    with open_source() as source:
        history = source.read_history(run_id)
    return history[-1].message if history else None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
