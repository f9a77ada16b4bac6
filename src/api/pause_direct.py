"""Where a resume or a rejection goes, as a cancel does (`control_direct.py`): the server at
`HEADWATER_API_URL`; this process's own service when it serves one; otherwise (the CLI on
the embedded default) straight into the database under `HEADWATER_HOME`, validated there
against the pause's schema in the same transaction (`PauseStore.resume`, `.reject`), then the
doorbell of the process that owns the run is rung and its service pushes the message at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from .client import Target
from .doorbell import ring
from .pause_client import PauseClient, RejectResult, ResumeResult
from .pause_store import PauseInfo, PauseStore, read_pause_readonly
from .process_recorders import embedded_server
from .settings import Settings, get_settings
from .storage import Storage


def _service_target(settings: Settings) -> Target | None:
    if settings.api_url:
        return Target.resolve(settings.api_url, settings.api_token, settings.api_tls_ca)
    server = embedded_server()
    return None if server is None else Target.resolve(server.url, server.token, None)


T = TypeVar("T")


def resume_here_or_there(
    ident: UUID | str, run_input: Any = None, *, by: str | None = None, settings: Settings | None = None,
) -> ResumeResult:
    """Resume the paused flow run `ident` (an id or unique prefix) with `run_input` (JSON
    data). Raises `InvalidRunInput` (still paused), `TransitionRejected` (not paused),
    `RunNotFound`."""

    def in_database(store: PauseStore, run_id: UUID) -> ResumeResult:
        pause = store.resume(run_id, run_input, by=by).pause
        return ResumeResult(run_id, pause.key, pause.resolved_by or "", pause.run_input)

    return _decide(ident, lambda client: client.resume(ident, run_input, by=by), in_database, settings)


def reject_here_or_there(
    ident: UUID | str, reason: str | None = None, *, by: str | None = None, settings: Settings | None = None,
) -> RejectResult:
    """Reject the paused flow run `ident` (an id or unique prefix): it ends FAILED. Raises
    `TransitionRejected` (not paused), `RunNotFound`."""

    def in_database(store: PauseStore, run_id: UUID) -> RejectResult:
        rejected = store.reject(run_id, reason, by=by)
        return RejectResult(run_id, rejected.pause.key, rejected.pause.resolved_by or "", rejected.said)

    return _decide(ident, lambda client: client.reject(ident, reason, by=by), in_database, settings)


def _decide(
    ident: UUID | str, by_service: Callable[[PauseClient], T], in_database: Callable[[PauseStore, UUID], T],
    settings: Settings | None,
) -> T:
    """One decision on a pause: through a service when there is one, else in the database
    and then the owner's doorbell."""
    settings = settings or get_settings()
    target = _service_target(settings)
    if target is not None:
        with PauseClient(target) as client:
            return by_service(client)
    path = settings.db_path
    reader = Storage(path, read_only=True)
    try:
        run_id = reader.resolve_id("flow", ident)
        store = PauseStore(path, synchronous=settings.db_synchronous)
        try:
            done = in_database(store, run_id)
        finally:
            store.close()
        pid = reader.read_flow_run(run_id).pid
        if pid is not None:
            ring(path, pid)
    finally:
        reader.close()
    return done


def read_pause_here_or_there(flow_run_id: UUID, settings: Settings | None = None) -> PauseInfo | None:
    """The run's latest pause, from the server or (on the embedded default) the database."""
    settings = settings or get_settings()
    if settings.api_url:
        with PauseClient(_service_target(settings), retry_for=5.0) as client:
            return client.read_pause(flow_run_id)
    return read_pause_readonly(settings.db_path, flow_run_id)
