"""The recorders of this process: its own (`get_recorder`: a client of `HEADWATER_API_URL`,
or the embedded server it starts), one per other server a task call names (`recorder_for`),
what to tell another process to record into the same server (`worker_environment`), and
their end (`reset_recorder`, and at exit). A forked child starts afresh: its parent's threads
did not survive the fork.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import threading
from pathlib import Path

from ..errors import RecordingError
from .client import Target, preflight
from .recorder import Recorder, _GrpcSink, _LocalSink
from .server import StateServer
from .settings import get_settings

log = logging.getLogger(__name__)

#: Where a recorder sends its records: (URL, token, TLS CA path). It travels with every task
#: call, so a worker process records into the same server as the flow that sent the call.
RecorderTarget = tuple[str, str | None, str | None]

_lock = threading.Lock()
_recorder: Recorder | None = None
_target: RecorderTarget | None = None
_owner_pid: int | None = None
_embedded: StateServer | None = None
_foreign: dict[RecorderTarget, Recorder] = {}


def get_recorder() -> Recorder:
    """This process's own recorder, created on first use.

    With `HEADWATER_API_URL` set it is a client of that server (token from
    `HEADWATER_API_TOKEN`), checked first by `preflight`: a wrong token, TLS that does not fit
    or a server that is not there raises here, before the run that asked has started. Otherwise it starts the embedded server on 127.0.0.1 with a random
    token against `$HEADWATER_HOME` and records into it directly. A forked child gets a fresh
    recorder of its own (the parent's threads did not survive the fork).
    """
    recorder = _recorder
    if recorder is not None and _owner_pid == os.getpid():
        return recorder
    with _lock:
        _forget_parent_locked()
        if _recorder is None:
            _create_recorder_locked()
            atexit.register(_shutdown_at_exit)
        assert _recorder is not None
        return _recorder


def recorder_target() -> RecorderTarget:
    """Where this process's own recorder sends records (starting it if need be)."""
    get_recorder()
    assert _target is not None
    return _target


def recorder_for(target: RecorderTarget) -> tuple[Recorder, bool]:
    """A recorder for `target`, and whether it is this process's own.

    A task call carries its flow's target. In the flow's process that is the process's own
    recorder; anywhere else (a worker process, a forked child) it is a client of the same
    server, created on first use (after a `preflight` check) and kept for the life of the
    process."""
    with _lock:
        _forget_parent_locked()
        if _recorder is not None and target == _target:
            return _recorder, True
        recorder = _foreign.get(target)
        if recorder is None:
            url, token, tls_ca = target
            settings = get_settings()
            client_target = Target.resolve(url, token, Path(tls_ca) if tls_ca else None)
            preflight(client_target, settings.api_connect_timeout_seconds)
            sink = _GrpcSink(client_target)
            recorder = Recorder(
                sink,
                grace=settings.recorder_grace_seconds,
                max_buffered=settings.recorder_max_buffered,
                max_logs_buffered=settings.logs_max_buffered,
            )
            if not _foreign and _recorder is None:
                atexit.register(_shutdown_at_exit)
            _foreign[target] = recorder
            _set_owner_locked()
        return recorder, False


def embedded_server() -> StateServer | None:
    """The embedded server this process started, if any."""
    return _embedded if _owner_pid == os.getpid() else None


def worker_environment() -> dict[str, str]:
    """Environment variables that point another process at the server this one records into.

    Task calls carry this already; these are for programs of your own (a subprocess running
    another flow, say) that should record into the same server."""
    url, token, tls_ca = recorder_target()
    env = {"HEADWATER_API_URL": url}
    if token:
        env["HEADWATER_API_TOKEN"] = token
    if tls_ca:
        env["HEADWATER_API_TLS_CA"] = tls_ca
    return env


def _forget_parent_locked() -> None:
    """In a forked child, drop the parent's recorders: their threads and sockets stayed behind."""
    global _recorder, _target, _embedded, _owner_pid
    if _owner_pid is not None and _owner_pid != os.getpid():
        _recorder = _target = _embedded = _owner_pid = None
        _foreign.clear()


def _set_owner_locked() -> None:
    global _owner_pid
    _owner_pid = os.getpid()


def _create_recorder_locked() -> None:
    global _recorder, _target, _embedded
    settings = get_settings()
    options = {
        "grace": settings.recorder_grace_seconds, "max_buffered": settings.recorder_max_buffered,
        "max_logs_buffered": settings.logs_max_buffered,
    }
    if settings.api_url:
        target = Target.resolve(settings.api_url, settings.api_token, settings.api_tls_ca)
        preflight(target, settings.api_connect_timeout_seconds)
        ca = str(settings.api_tls_ca) if settings.api_tls_ca else None
        sink = _GrpcSink(target)
        _recorder = Recorder(sink, **options)  # type: ignore[arg-type]
        _target = (settings.api_url, settings.api_token, ca)
    else:
        token = secrets.token_urlsafe(24)
        server = StateServer(
            settings.home, host="127.0.0.1", port=0, token=token,
            heartbeat_timeout=settings.heartbeat_timeout_seconds,
            heartbeat_interval=settings.heartbeat_interval_seconds,
            reap_at_start=True,  # runs of processes gone from this home: see server.py
            synchronous=settings.db_synchronous, writer_process=settings.writer_process,
            doorbell=True,  # the CLI's cancels reach this process through it (doorbell.py)
        )
        url = server.start()
        _embedded = server
        assert server.committer is not None
        _recorder = Recorder(_LocalSink(server.committer), **options)  # type: ignore[arg-type]
        _target = (url, token, None)
    _set_owner_locked()


def reset_recorder(timeout: float | None = 5.0) -> None:
    """Close this process's recorders and embedded server; the next use starts afresh."""
    global _recorder, _target, _embedded, _owner_pid
    with _lock:
        _forget_parent_locked()
        recorders = [r for r in (_recorder, *_foreign.values()) if r is not None]
        server = _embedded
        _recorder = _target = _embedded = _owner_pid = None
        _foreign.clear()
    errors: list[RecordingError] = []
    try:
        for recorder in recorders:
            try:
                recorder.close(timeout)
            except RecordingError as exc:
                errors.append(exc)
    finally:
        if server is not None:
            server.stop()
            # Their streams would reconnect to the stopped server's URL for good; the next
            # flow makes its own (its server has a new token, perhaps the same port).
            from .control_client import close_control_clients

            close_control_clients()
    if errors:
        raise errors[0]


def _after_fork_in_child() -> None:
    # The parent's lock may have been held by one of its threads at the fork: a fresh one.
    global _lock
    _lock = threading.Lock()
    _forget_parent_locked()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _shutdown_at_exit() -> None:
    if _owner_pid != os.getpid():
        return
    try:
        reset_recorder(timeout=5.0)
    except RecordingError as exc:
        log.error("at exit: %s", exc)
