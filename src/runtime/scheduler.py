"""The driver between the pure `RunLifecycle` and a task runner, one per flow run.

It turns what happens (a submit, an upstream finishing, a runner future completing, a retry
timer firing, the flow asking to cancel) into lifecycle events and carries out the
instructions that come back: dispatch a call to the runner, watch an upstream, complete a
future, start a timer, revoke a queued call, record a state the engine never set. It decides
nothing itself.

It consumes outcomes only: a runner future's `result()` is the attempt's `RunOutcome`, whose
data may have stayed where the run ran. The outcome is applied to the flow's own record of
the run (`RunOutcome.adopt_into`), so the flow's view and the state service agree whatever
the runner. It keeps a run's call only until the run is finished (retries send it again), so
a result lives exactly as long as the user keeps its future.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

from ..errors import InvalidTransition
from ..runners.base import TaskCall, TaskRunner
from .engine import RunOutcome, TaskRunPayload, outcome_of
from .futures import RunFuture, TaskFuture
from .lifecycle import (
    AttemptEnded,
    AttemptLost,
    CancelRequested,
    Dispatch,
    End,
    Event,
    Instruction,
    Mark,
    Resolve,
    RetryDue,
    Revoke,
    Revoked,
    RunLifecycle,
    StartTimer,
    Submitted,
    UpstreamFinished,
    Watch,
)
from .runs import set_state
from .states import Cancelled, Crashed, State, StateType

RunnerEntrypoint = Callable[[Any, tuple[Any, ...]], RunOutcome]


@dataclass(slots=True)
class _Entry:
    """A run this flow has not seen finish: its future, its call's parts, its last outcome."""

    future: TaskFuture[Any]
    payload: TaskRunPayload
    upstream: list[RunFuture[Any]]
    outcome: RunOutcome | None = None


class TaskScheduler:
    """Feeds a flow run's task runs through the lifecycle to `runner`. See the module docstring."""

    def __init__(self, runner: TaskRunner, entrypoint: RunnerEntrypoint) -> None:
        self.runner = runner
        self._entrypoint = entrypoint
        self._lifecycle = RunLifecycle()
        self._lock = threading.Lock()
        self._entries: dict[UUID, _Entry] = {}
        self._tracked: dict[UUID, RunFuture[Any]] = {}  # subflows submitted in this flow
        self._all_done = threading.Condition(threading.Lock())
        self._someone_waits = False  # notify only when wait_all is blocked: saves a lock per run
        #: run id -> why a worker could not make that run's records durable
        self.unrecorded: dict[UUID, str] = {}

    # -- what happens ------------------------------------------------------------------------

    def submit(self, future: TaskFuture[Any], payload: TaskRunPayload, upstream: list[RunFuture[Any]]) -> None:
        run_id = future.run_id
        future.scheduler = self
        self._entries[run_id] = _Entry(future, payload, upstream)
        waiting = tuple([u.run_id for u in upstream if not u.done()]) if upstream else ()
        self._feed(Submitted(run_id, waiting), upstream)

    def track(self, future: RunFuture[Any]) -> None:
        """Count a run not dispatched here (a submitted subflow) among this flow's unfinished."""
        self._tracked[future.run_id] = future
        future.add_done_callback(self._untrack)

    def cancel_unfinished(self, reason: str, *, crash_running: bool = False) -> None:
        """Cancel runs that have not started: waiting ones, those queued in the runner and
        those waiting to retry. Runs already running are left to finish and record their own
        outcome, unless `crash_running` (the flow was interrupted): then they are marked
        CRASHED now."""
        self._feed(CancelRequested(reason, crash_running))

    def _feed(self, event: Event, upstream: list[RunFuture[Any]] | None = None) -> None:
        with self._lock:
            instructions = self._lifecycle.handle(event)
        if instructions:
            self._execute(instructions, upstream)

    def _upstream_finished(self, run_id: UUID, _future: object) -> None:
        self._feed(UpstreamFinished(run_id))

    def _attempt_done(self, entry: _Entry, runner_future: Any) -> None:
        run_id = entry.future.run_id
        try:
            outcome: RunOutcome = runner_future.result()
        except CancelledError:
            self._feed(AttemptLost(run_id, StateType.CANCELLED, "cancelled before it started"))
            return
        except BaseException as exc:  # the runner lost the run: a crash, not a task failure
            entry.outcome = RunOutcome(Crashed(exc, _could_not_run(exc)))
            self._feed(AttemptLost(run_id, StateType.CRASHED, str(entry.outcome.state.message)))
            return
        outcome.adopt_into(entry.future.task_run)
        entry.outcome = outcome
        if outcome.unrecorded is not None:
            self.unrecorded[run_id] = outcome.unrecorded
        self._feed(AttemptEnded(run_id, outcome.retry_delay))

    # -- carrying out instructions -----------------------------------------------------------

    def _execute(self, instructions: list[Instruction], upstream: list[RunFuture[Any]] | None) -> None:
        targets: dict[UUID, RunFuture[Any]] | None = None
        for instruction in instructions:
            kind = type(instruction)
            if kind is Dispatch:
                self._dispatch(self._entries[instruction.run_id])
            elif kind is Resolve:
                entry = self._entries.pop(instruction.run_id)
                assert entry.outcome is not None
                self._finish(entry, entry.outcome)
            elif kind is Watch:
                if targets is None:
                    targets = {u.run_id: u for u in upstream or ()}
                targets[instruction.run_id].add_done_callback(partial(self._upstream_finished, instruction.run_id))
            elif kind is StartTimer:
                self._start_timer(instruction)  # type: ignore[arg-type]
            elif kind is End:
                self._end(instruction)  # type: ignore[arg-type]
            elif kind is Revoke:
                self._revoke(instruction.run_id)
            else:
                assert kind is Mark
                entry = self._entries[instruction.run_id]
                _record(entry, Crashed(message=instruction.reason))  # type: ignore[union-attr]

    def _dispatch(self, entry: _Entry) -> None:
        future = entry.future
        upstream = entry.upstream
        call = TaskCall(
            future.run_id,
            self._entrypoint,
            entry.payload,
            tuple([self._upstream_for_runner(u) for u in upstream]) if upstream else (),
        )
        try:
            runner_future = self.runner.submit(call)
        except BaseException as exc:  # the run cannot start: it crashed, and says why
            message = _could_not_run(exc)
            entry.outcome = RunOutcome(Crashed(exc, message))
            self._feed(AttemptLost(future.run_id, StateType.CRASHED, message))
            return
        future.runner_future = runner_future
        runner_future.add_done_callback(partial(self._attempt_done, entry))

    def _upstream_for_runner(self, upstream: RunFuture[Any]) -> Any:
        """What the runner gets for an upstream: its own future when it ran the upstream (so a
        cluster keeps the data on its workers), else the outcome, which is here."""
        if type(upstream) is TaskFuture:
            outcome = upstream.outcome
            runner_future = upstream.runner_future
            if runner_future is not None and upstream.scheduler is self:
                return runner_future
            if outcome is not None:
                return outcome
        return outcome_of(upstream.state)

    def _finish(self, entry: _Entry, outcome: RunOutcome) -> None:
        future = entry.future
        future.outcome = outcome
        future._set_final(outcome.state)
        self._forget(future.run_id)

    def _start_timer(self, instruction: StartTimer) -> None:
        event = RetryDue(instruction.run_id)
        if instruction.delay <= 0:
            self._feed(event)
            return
        timer = threading.Timer(instruction.delay, self._feed, (event,))
        timer.daemon = True
        timer.start()

    def _revoke(self, run_id: UUID) -> None:
        entry = self._entries.get(run_id)
        runner_future = entry.future.runner_future if entry is not None else None
        if runner_future is None or runner_future.cancel():
            return  # a cancelled call's future completes with CancelledError: AttemptLost
        self._feed(Revoked(run_id, running=not runner_future.done()))

    def _end(self, instruction: End) -> None:
        entry = self._entries.pop(instruction.run_id)
        lost = entry.outcome.state if entry.outcome is not None else None
        if instruction.type is StateType.CRASHED:
            data = lost.data if lost is not None and lost.is_crashed() else None
            state = Crashed(data, instruction.reason)
        else:
            state = Cancelled(message=instruction.reason)
        final = _record(entry, state)
        self._finish(entry, RunOutcome(final))

    # -- waiting for the end -----------------------------------------------------------------

    def _untrack(self, future: RunFuture[Any]) -> None:
        self._tracked.pop(future.run_id, None)
        self._forget(future.run_id)

    def _forget(self, run_id: UUID) -> None:
        if self._someone_waits and not self._entries and not self._tracked:
            with self._all_done:
                self._all_done.notify_all()

    def unfinished(self) -> list[RunFuture[Any]]:
        return [e.future for e in list(self._entries.values())] + list(self._tracked.values())

    def wait_all(self, timeout: float | None = None) -> bool:
        """Block until every run submitted here has finished; False if `timeout` passed."""
        with self._all_done:
            self._someone_waits = True
            try:
                return self._all_done.wait_for(
                    lambda: not self._entries and not self._tracked, timeout
                )
            finally:
                self._someone_waits = False


def _could_not_run(exc: BaseException) -> str:
    return f"the task runner could not run it: {type(exc).__name__}: {exc}"


def _record(entry: _Entry, state: State) -> State:
    """Put a state the engine never got to set on the flow's record of the run, if still
    allowed, and report it as a state set after the hand-over (`RunReporter.late`)."""
    run = entry.future.task_run
    reporter = entry.payload.services.reporter()
    try:
        return set_state(run, state, reporter.late if reporter is not None else None)
    except InvalidTransition:  # the run had already ended; its own final state stands
        return run.state or state
