"""`headwater runs cancel ID`: cancel a flow run and, unless `--no-wait`, wait for its end.

Where the request goes (the server at `HEADWATER_API_URL`, else the database under
`HEADWATER_HOME` and the owning process's doorbell) is `api/control_direct.py`'s business.
Exit status: 0 when the run ended CANCELLED (or, with `--no-wait`, once the request is
recorded), 1 when it was refused (an unknown id, a run that already finished) or the run
ended another way first.
"""

from __future__ import annotations

import argparse
import getpass

from ..api.control_client import CancelRequest
from ..api.control_direct import cancel_here_or_there


def cancel_run(args: argparse.Namespace) -> int:
    by = args.by or _user()
    outcome = cancel_here_or_there(args.id, deadline_seconds=args.deadline, by=by, wait=not args.no_wait)
    if isinstance(outcome, CancelRequest):
        what = "already being cancelled" if outcome.already else "cancelling"
        extra = f" (and {len(outcome.cancelled) - 1} subflow run(s))" if len(outcome.cancelled) > 1 else ""
        print(f"flow run {outcome.flow_run_id}: {what}{extra}")
        return 0
    print(f"flow run {outcome.id}: {outcome.state_type} ({outcome.state_name})")
    return 0 if outcome.state_type == "CANCELLED" else 1


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
