"""Where a cancel request goes: the server, this process's own service, or the database.

- `HEADWATER_API_URL` set: the server's `CancelFlowRun` (it holds the deadline).
- This process serves the state service (a flow process cancelling a run): that service,
  called in-process.
- Otherwise (the CLI on the embedded default): straight into the database under
  `HEADWATER_HOME` (`ControlStore.request_cancel`, one transaction), then the doorbell of
  each process that owns a cancelled run is rung (`doorbell.py`), whose service pushes the
  message at once. No service holds the deadline in this case, unless one is running on the
  home: with `wait=True` the caller holds it, ending the run itself when it passes; else the
  next service to start on the home (or a standalone server already running there) does.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from . import rules
from .client import StateClient, Target
from .control_client import CancelRequest, ControlClient
from .control_store import CANCEL_DEADLINE, ControlStore
from .doorbell import ring
from .process_recorders import embedded_server
from .records import FlowRunInfo
from .settings import Settings, get_settings
from .storage import Storage

#: How often a caller that waits for the end looks (it is a person at a terminal, or a test).
_WAIT_STEP = 0.02


def cancel_here_or_there(
    ident: UUID | str, *, deadline_seconds: float | None, by: str | None, wait: bool,
    settings: Settings | None = None,
) -> CancelRequest | FlowRunInfo:
    """See the module docstring; returns the request, or with `wait` the run as it ended.
    `deadline_seconds` None: `CANCEL_DEADLINE`."""
    settings = settings or get_settings()
    if deadline_seconds is None:
        deadline_seconds = CANCEL_DEADLINE
    server = embedded_server()
    if settings.api_url or server is not None:
        target = (
            Target.resolve(settings.api_url, settings.api_token, settings.api_tls_ca) if settings.api_url
            else Target.resolve(server.url, server.token, None)  # type: ignore[union-attr]
        )
        with ControlClient(target) as client:
            request = client.cancel_flow_run(ident, deadline_seconds=deadline_seconds, by=by)
        if not wait:
            return request
        with StateClient(target) as reader:
            return _wait_for_end(lambda: reader.read_flow_run(request.flow_run_id), request.deadline + 5.0)
    return _cancel_in_database(settings, ident, deadline_seconds=deadline_seconds, by=by, wait=wait)


def _cancel_in_database(
    settings: Settings, ident: UUID | str, *, deadline_seconds: float, by: str | None, wait: bool,
) -> CancelRequest | FlowRunInfo:
    path = settings.db_path
    reader = Storage(path, read_only=True)
    try:
        run_id = reader.resolve_id("flow", ident)
        store = ControlStore(path, synchronous=settings.db_synchronous)
        try:
            outcome = store.request_cancel(run_id, deadline_seconds=deadline_seconds, by=by)
            for pid in {reader.read_flow_run(r).pid for r in outcome.cancelled}:
                if pid is not None:
                    ring(path, pid)
            request = CancelRequest(run_id, outcome.cancelled, outcome.already, outcome.deadline)
            if not wait:
                return request
            return _wait_for_end(lambda: reader.read_flow_run(run_id), outcome.deadline, at_deadline=store.settle_due)
        finally:
            store.close()
    finally:
        reader.close()


def _wait_for_end(read: Any, until: float, at_deadline: Any = None) -> FlowRunInfo:
    """Read the run until it has ended; at `until`, `at_deadline()` (settle it) and read once more."""
    while True:
        info: FlowRunInfo = read()
        if rules.is_terminal(info.state_type):
            return info
        if time.time() >= until:
            if at_deadline is not None:
                at_deadline()
                at_deadline = None
                continue
            return info
        time.sleep(_WAIT_STEP)
