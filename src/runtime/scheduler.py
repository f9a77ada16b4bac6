"""The driver between the pure `GraphState` and a task runner, one per flow run.

`submit` hands a task run to the runner at once when its upstreams are finished, otherwise
parks it in the graph; completions of watched upstreams are fed back as `Finished` events and
the resulting `Dispatch` instructions submit the parked runs. So no worker ever waits inside a
task for an argument to be ready.

It also knows which of its runs are unfinished, so a flow can wait for all of them at its end
and mark them if the flow is interrupted. It holds no reference to a run once it finishes: a
result lives exactly as long as the user keeps its future.
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
from ..runners.base import FinishedFuture, TaskCall, TaskRunner
from .futures import RunFuture, TaskFuture
from .graph import Dispatch, Finished, GraphState, Instruction, Submitted, Watch
from .runs import set_state
from .states import Cancelled, Crashed, State

RunnerEntrypoint = Callable[[Any, tuple[Any, ...]], State]


@dataclass(slots=True)
class _Parked:
    future: TaskFuture[Any]
    payload: Any
    upstream: list[RunFuture[Any]]


class TaskScheduler:
    """Dispatches task runs to `runner` as their upstreams finish. See the module docstring."""

    def __init__(self, runner: TaskRunner, entrypoint: RunnerEntrypoint) -> None:
        self.runner = runner
        self._entrypoint = entrypoint
        self._graph = GraphState()
        self._lock = threading.Lock()
        self._parked: dict[UUID, _Parked] = {}
        self._unfinished: dict[UUID, RunFuture[Any]] = {}
        self._all_done = threading.Condition(threading.Lock())
        self._someone_waits = False  # notify only when wait_all is blocked: saves a lock per run

    def submit(self, future: TaskFuture[Any], payload: Any, upstream: list[RunFuture[Any]]) -> None:
        self._unfinished[future.run_id] = future
        waiting = [u for u in upstream if not u.done()] if upstream else upstream
        if not waiting:
            self._dispatch(future, payload, upstream)
            return
        targets = {u.run_id: u for u in waiting}
        with self._lock:
            self._parked[future.run_id] = _Parked(future, payload, upstream)
            instructions = self._graph.handle(Submitted(future.run_id, tuple(targets)))
        self._execute(instructions, targets)

    def track(self, future: RunFuture[Any]) -> None:
        """Count a run not dispatched here (a submitted subflow) among this flow's unfinished."""
        self._unfinished[future.run_id] = future
        future.add_done_callback(self._forget)

    def _execute(self, instructions: list[Instruction], targets: dict[UUID, RunFuture[Any]]) -> None:
        for instruction in instructions:
            if type(instruction) is Watch:
                targets[instruction.run_id].add_done_callback(partial(self._upstream_done, instruction.run_id))
            else:
                assert type(instruction) is Dispatch
                with self._lock:
                    parked = self._parked.pop(instruction.run_id, None)
                if parked is not None:  # None: cancelled while it waited
                    self._dispatch(parked.future, parked.payload, parked.upstream)

    def _upstream_done(self, run_id: UUID, _future: object) -> None:
        self._finished(run_id)

    def _finished(self, run_id: UUID) -> None:
        with self._lock:
            instructions = self._graph.handle(Finished(run_id))
        if instructions:
            self._execute(instructions, {})

    def _dispatch(self, future: TaskFuture[Any], payload: Any, upstream: list[RunFuture[Any]]) -> None:
        call = TaskCall(
            future.run_id,
            self._entrypoint,
            payload,
            tuple(_runner_future_of(u) for u in upstream) if upstream else (),
        )
        try:
            runner_future = self.runner.submit(call)
        except BaseException as exc:  # the run cannot start: it crashed, and says why
            self._complete(future, FinishedFuture(future.run_id, error=exc))
            return
        future.runner_future = runner_future
        runner_future.add_done_callback(lambda rf: self._complete(future, rf))

    def _complete(self, future: TaskFuture[Any], runner_future: Any) -> None:
        try:
            state = runner_future.result()
        except CancelledError as exc:
            state = _record(future, Cancelled(exc, "cancelled before it started"))
        except BaseException as exc:  # the runner lost the run: a crash, not a task failure
            state = _record(future, Crashed(exc, f"the task runner could not run it: {exc!r}"))
        future._set_final(state)
        self._forget(future)

    def cancel_unfinished(self, reason: str, *, crash_running: bool = False) -> None:
        """Cancel runs that have not started: parked ones and those queued in the runner.
        Runs already running are left to finish and record their own outcome, unless
        `crash_running` (the flow was interrupted): then they are marked CRASHED now."""
        with self._lock:
            parked = list(self._parked.values())
            self._parked.clear()
        for entry in parked:
            entry.future._set_final(_record(entry.future, Cancelled(message=reason)))
            self._forget(entry.future)
        for future in self.unfinished():
            runner_future = getattr(future, "runner_future", None)
            if runner_future is not None and runner_future.cancel():
                continue
            run = getattr(future, "task_run", None)
            if crash_running and run is not None and run.state is not None and run.state.is_running():
                _record(future, Crashed(message=reason))  # type: ignore[arg-type]

    def _forget(self, future: RunFuture[Any]) -> None:
        self._unfinished.pop(future.run_id, None)
        if not self._unfinished and self._someone_waits:
            with self._all_done:
                self._all_done.notify_all()

    def unfinished(self) -> list[RunFuture[Any]]:
        return list(self._unfinished.values())

    def wait_all(self, timeout: float | None = None) -> bool:
        """Block until every run submitted here has finished; False if `timeout` passed."""
        with self._all_done:
            self._someone_waits = True
            try:
                return self._all_done.wait_for(lambda: not self._unfinished, timeout)
            finally:
                self._someone_waits = False


def _record(future: TaskFuture[Any], state: State) -> State:
    """Put a state the engine never got to set on the run's record, if still allowed."""
    try:
        return set_state(future.task_run, state)
    except InvalidTransition:  # the run had already ended; its own final state stands
        return future.task_run.state or state


def _runner_future_of(upstream: RunFuture[Any]) -> Any:
    """What a runner resolves for an upstream: its runner future, or the final state itself
    wrapped in a finished future (subflows and failed dispatches have no runner future)."""
    if isinstance(upstream, TaskFuture) and upstream.runner_future is not None:
        return upstream.runner_future
    return FinishedFuture(upstream.run_id, upstream.state)
