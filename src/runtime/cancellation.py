"""Cancelling a flow run: asking (`cancel_flow_run`) and, in the flow's process, stopping.

Asking goes to the state service, which moves the run (and its live subflows) to CANCELLING
with a deadline and tells the process that owns it on that process's control stream
(`api/control_service.py`). With `HEADWATER_API_URL` set that is one call to the server. On
the embedded default the caller has no server to call: the request is written straight into
the database and the owning process's doorbell is rung (`api/doorbell.py`); as no service
holds the deadline then, `wait=True` makes the caller hold it (see `cancel_flow_run`).

Stopping, in the flow's process (`FlowCancel.requested`, on the control stream's thread):
1. the flow's scheduler refuses new submits (the body's next `submit` raises
   `CancelInterrupt`) and cancels what has not started: waiting, queued, slot-parked and
   retry-waiting task runs end CANCELLED;
2. task runs running in this process are interrupted: a thread task by `CancelInterrupt`
   raised in its thread at its next bytecode (as `timeout_seconds` interrupts, so a call
   blocked in C, `time.sleep` say, stops only when it returns); an async task at its next
   await. Each ends CANCELLED. Task runs handed to a runner elsewhere are withdrawn (the
   runner's `cancel`) and end CANCELLED at once, and the runner's `interrupt` stops the
   running ones where they run: on Dask workers `InterruptOnWorker` does what step 2 does
   (`Client.run`), on Ray `ray.cancel(force=False)` (`runners/_ray.py`). A call blocked in C
   there stops when it returns, its late reports refused; the message says which. The
   process pool's running tasks are not interrupted: they finish, their reports refused;
3. an async flow's body is cancelled at its next await; a sync body stops at its next
   `submit`, or finishes, as what it waits for has ended;
4. the run ends CANCELLED, whatever the body did, with the interrupted task runs named in the
   state's message; `on_cancellation` hooks run; the flow call raises `CancelledRun`.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ..errors import CancelInterrupt as CancelInterrupt

if TYPE_CHECKING:
    from .flow_engine import FlowRunEngine
    from .runs import TaskRun


class _Attempt:
    """A task run attempt running in this process, and how to interrupt it; registered while
    its `with` block runs (as None when it has no flow run to be cancelled with)."""

    __slots__ = ("name", "flow_run_id", "thread_id", "loop", "task", "interrupted", "finished", "lock")

    def __init__(
        self,
        name: str,
        flow_run_id: UUID | None,
        thread_id: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        task: asyncio.Task[Any] | None = None,
    ) -> None:
        self.name, self.flow_run_id = name, flow_run_id
        self.thread_id, self.loop, self.task = thread_id, loop, task
        self.interrupted = self.finished = False
        #: Held while an interrupt is aimed at it and while it finishes, so none lands after.
        self.lock = threading.Lock()

    def __enter__(self) -> _Attempt | None:
        if self.flow_run_id is None:
            return None
        _running[id(self)] = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.flow_run_id is None:
            return
        with self.lock:  # after this no interrupt can be aimed at this thread for this attempt
            self.finished = True
        _running.pop(id(self), None)


#: How long the flow's end waits for its workers to say what a cancel interrupted there.
_WORKERS_ANSWER = 5.0
#: Every attempt running in this process, by id(). One dict store to register and one pop to
#: leave, each atomic under the GIL: a lock every task shared here convoyed the pool's threads
#: behind the GIL (36% of a flow of no-op tasks' samples). A cancel, which is rare, pays
#: instead: it scans them all for its flow run.
_running: dict[int, _Attempt] = {}


def interruptible(run: TaskRun) -> _Attempt:
    """Register a sync attempt (this thread) so its flow's cancel can interrupt it."""
    return _Attempt(run.name, run.flow_run_id, thread_id=threading.get_ident())


def interruptible_async(run: TaskRun) -> _Attempt:
    """Register an async attempt (the current asyncio task)."""
    return _Attempt(run.name, run.flow_run_id, loop=asyncio.get_running_loop(), task=asyncio.current_task())


def _attempts_of(flow_run_id: UUID) -> list[_Attempt]:
    while True:
        try:  # a copy made while another thread registers can see the dict change size
            attempts = list(_running.values())
        except RuntimeError:
            continue
        return [attempt for attempt in attempts if attempt.flow_run_id == flow_run_id]


def interrupt_running(flow_run_id: UUID) -> list[str]:
    """Interrupt every attempt of `flow_run_id` running in this process; their run names."""
    return [attempt.name for attempt in _interrupt(flow_run_id)]


def _interrupt(flow_run_id: UUID) -> list[_Attempt]:
    interrupted = []
    for attempt in _attempts_of(flow_run_id):
        with attempt.lock:
            if attempt.interrupted or attempt.finished:
                continue
            attempt.interrupted = True
            interrupted.append(attempt)
            if attempt.thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(attempt.thread_id), ctypes.py_object(CancelInterrupt)
                )
            elif attempt.loop is not None and attempt.task is not None:
                attempt.loop.call_soon_threadsafe(attempt.task.cancel)
    return interrupted


def _still_running(attempts: list[_Attempt]) -> list[_Attempt]:
    return [attempt for attempt in attempts if not attempt.finished]


@dataclass(frozen=True, slots=True)
class InterruptOnWorker:
    """What a runner runs on its workers when a flow run is cancelled (`TaskRunner.interrupt`,
    Dask's `Client.run`): interrupt that flow run's attempts running in that process, as
    `interrupt_running` does here, and name them. An attempt still running after `settle`
    seconds is blocked outside Python (a C call, `time.sleep(600)`): the interrupt lands when
    that call returns, and its name says so. Pickles by reference to this module, so the
    worker's engine and this share one registry."""

    flow_run_id: UUID
    settle: float = 0.2

    def __call__(self) -> list[str]:
        attempts = _interrupt(self.flow_run_id)
        give_up = time.monotonic() + self.settle
        stuck = _still_running(attempts)
        while stuck and time.monotonic() < give_up:
            time.sleep(0.005)
            stuck = _still_running(stuck)
        return [
            f"{attempt.name} (on {_where()}, "
            + ("still running: blocked outside Python, it stops when that call returns)" if attempt in stuck
               else "stopped)")
            for attempt in attempts
        ]


def _where() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


@dataclass(slots=True)
class FlowCancel:
    """One flow run's side of a cancel: what was asked, and what it interrupted."""

    engine: FlowRunEngine
    reason: str | None = None
    interrupted: list[str] = field(default_factory=list)
    body_loop: asyncio.AbstractEventLoop | None = None
    body_task: asyncio.Task[Any] | None = None
    _unwatch: Any = None
    #: set once `on_message` has done all it does: the flow may end before (its task runs
    #: ended when revoked), and must not name what was interrupted until the workers answered
    _acted: threading.Event = field(default_factory=threading.Event)

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def on_message(self, message: Any) -> None:
        """A control message for this run (on the control stream's thread)."""
        if message.kind != "cancel" or self.requested:
            return
        self.reason = str(message.body.get("reason") or "cancel requested")
        try:
            scheduler = self.engine.scheduler
            if scheduler is not None:
                scheduler.refuse_submits(self.reason)
                scheduler.cancel_unfinished(f"flow run cancelled ({self.reason})")
            self.interrupted += interrupt_running(self.engine.run.id)
            if self.body_loop is not None and self.body_task is not None:
                self.body_loop.call_soon_threadsafe(self.body_task.cancel)
            if scheduler is not None:  # attempts in other processes (Dask workers): last, as
                # it is a round trip, and what was withdrawn above must not start meanwhile
                self.interrupted += scheduler.runner.interrupt(InterruptOnWorker(self.engine.run.id))
        finally:
            self._acted.set()

    def message(self) -> str:
        self._acted.wait(_WORKERS_ANSWER)
        what = ", ".join(self.interrupted) if self.interrupted else "no running task runs"
        return f"Flow run cancelled ({self.reason}); interrupted: {what}"

    def watch(self) -> None:
        """Listen for this run's control messages (a run that records only)."""
        target = self.engine.services.target
        if target is None:
            return
        client = _control_client(target)
        run_id = self.engine.run.id
        client.watch(run_id, self.engine.on_control_message)  # cancels here, resumes to pausing.py
        self._unwatch = lambda: client.unwatch(run_id)

    def unwatch(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None


def _control_client(target: tuple[str, str | None, str | None]) -> Any:
    from ..api.client import Target
    from ..api.control_client import control_client

    url, token, tls_ca = target
    return control_client(Target.resolve(url, token, Path(tls_ca) if tls_ca else None))


def cancel_flow_run(
    flow_run_id: UUID | str, *, deadline_seconds: float | None = None, by: str | None = None, wait: bool = False,
) -> Any:
    """Cancel a flow run (and its running subflows): it goes to CANCELLING at once, and its
    process is told to stop and end it CANCELLED (see the module docstring). If the process
    does not end it within `deadline_seconds` (None: the service's `CANCEL_DEADLINE`, 30 s; hung or gone), the state service ends it
    CANCELLED itself; anything the process reports later is refused.

    Raises `TransitionRejected` for a run that already finished, `RunNotFound` for an
    unknown id. Returns the `CancelRequest`. With `wait=True`, waits for the run to end and
    returns its final flow run info instead; on the embedded default (no server to hold the
    deadline) the waiting caller ends the run itself at the deadline."""
    from ..api.control_direct import cancel_here_or_there

    return cancel_here_or_there(flow_run_id, deadline_seconds=deadline_seconds, by=by, wait=wait)

