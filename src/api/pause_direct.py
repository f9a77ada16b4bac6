"""Where a resume goes, as a cancel does (`control_direct.py`): the server at
`HEADWATER_API_URL`; this process's own service when it serves one; otherwise (the CLI on
the embedded default) straight into the database under `HEADWATER_HOME`, validated there
against the pause's schema in the same transaction (`PauseStore.resume`), then the doorbell
of the process that owns the run is rung and its service pushes the resume at once.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .client import Target
from .doorbell import ring
from .pause_client import PauseClient, ResumeResult
from .pause_store import PauseInfo, PauseStore, read_pause_readonly
from .recorder import embedded_server
from .settings import Settings, get_settings
from .storage import Storage


def _service_target(settings: Settings) -> Target | None:
    if settings.api_url:
        return Target.resolve(settings.api_url, settings.api_token, settings.api_tls_ca)
    server = embedded_server()
    return None if server is None else Target.resolve(server.url, server.token, None)


def resume_here_or_there(
    ident: UUID | str, run_input: Any = None, *, by: str | None = None, settings: Settings | None = None,
) -> ResumeResult:
    """Resume the paused flow run `ident` (an id or unique prefix) with `run_input` (JSON
    data). Raises `InvalidRunInput` (still paused), `TransitionRejected` (not paused),
    `RunNotFound`."""
    settings = settings or get_settings()
    target = _service_target(settings)
    if target is not None:
        with PauseClient(target) as client:
            return client.resume(ident, run_input, by=by)
    path = settings.db_path
    reader = Storage(path, read_only=True)
    try:
        run_id = reader.resolve_id("flow", ident)
        store = PauseStore(path, synchronous=settings.db_synchronous)
        try:
            resumed = store.resume(run_id, run_input, by=by)
        finally:
            store.close()
        pid = reader.read_flow_run(run_id).pid
        if pid is not None:
            ring(path, pid)
    finally:
        reader.close()
    pause = resumed.pause
    return ResumeResult(run_id, pause.key, pause.resolved_by or "", pause.run_input)


def read_pause_here_or_there(flow_run_id: UUID, settings: Settings | None = None) -> PauseInfo | None:
    """The run's latest pause, from the server or (on the embedded default) the database."""
    settings = settings or get_settings()
    if settings.api_url:
        with PauseClient(_service_target(settings), retry_for=5.0) as client:
            return client.read_pause(flow_run_id)
    return read_pause_readonly(settings.db_path, flow_run_id)
