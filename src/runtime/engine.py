"""One task run's lifecycle, wherever it runs: the entrypoint every runner executes.

The order of work, fixed and the same on every runner:

1. Inputs: each upstream's final state arrives as a value. If an upstream the run needs did
   not complete (and was not wrapped in `allow_failure`), the run ends PENDING("NotReady")
   without running. Otherwise futures in the arguments are replaced by upstream results.
2. PENDING -> RUNNING (or SCHEDULED("AwaitingRetry") -> RUNNING("Retrying")); `on_running`
   hooks run.
3. The function runs, under `timeout_seconds` if set (see `timeouts.py` for what a timeout
   can interrupt); `attempts.py` sequences steps 2-4.
4. It returned: COMPLETED with the value (a returned `State` is used as the final state).
   It raised an `Exception`: if retries remain and `retry_condition_fn` agrees, the run goes
   to SCHEDULED("AwaitingRetry"), sleeps the retry delay (with jitter) and returns to step 2;
   otherwise FAILED (named "TimedOut" for a timeout). It raised a `BaseException` that is not
   an `Exception` (KeyboardInterrupt, SystemExit, cancellation): CRASHED or CANCELLED, and the
   exception is re-raised after step 5 so interrupts still stop the program.
5. `on_completion` or `on_failure` hooks run; the final state is returned to the runner.

Sync and async tasks share `_TaskRunEngine`; only the two small drivers differ, in how they
call, sleep and time out.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidTransition, RunTimedOut
from .arguments import fill_upstream
from .attempts import run_attempts, run_attempts_async
from .context import TaskRunContext, entered, task_run_var
from .hooks import call_hooks
from .logs import run_extra, task_logger
from .portal import run_async
from .runs import TaskRun, set_state
from .states import (
    AwaitingRetry,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    NotReady,
    Retrying,
    Running,
    State,
    StateType,
    TimedOut,
)

if TYPE_CHECKING:
    from .tasks import Task


@dataclass(slots=True)
class TaskRunPayload:
    """What the engine needs to run one task run: the task, its run and its arguments."""

    task: Task[..., Any]
    task_run: TaskRun
    parameters: dict[str, Any]
    required: frozenset[int]  # upstream indexes that must complete for the run to start
    log_prints: bool


def _is_cancellation(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError)


class _TaskRunEngine:
    """The state changes of one task run; the drivers below decide when each happens."""

    __slots__ = ("task", "run", "payload", "upstream", "parameters", "log_prints", "reraise")

    def __init__(self, payload: TaskRunPayload, upstream: Sequence[Any]) -> None:
        self.payload = payload
        self.task = payload.task
        self.run = payload.task_run
        self.upstream = upstream
        self.parameters: dict[str, Any] = payload.parameters
        self.log_prints = payload.log_prints
        self.reraise: BaseException | None = None

    def context(self) -> TaskRunContext:
        return TaskRunContext(self.task, self.run, self.log_prints)

    def inputs_ready(self) -> bool:
        """Step 1. False when the run ended NotReady because an upstream did not complete."""
        if not self.upstream:
            return True
        for index in self.payload.required:
            state: State = self.upstream[index]
            if state.type is not StateType.COMPLETED:
                message = f"upstream run ended {state}; this run did not start"
                self._set(NotReady(message))
                return False
        values = tuple(
            s.data if s.type is StateType.COMPLETED else s.result(raise_on_failure=False)
            for s in self.upstream
        )
        self.parameters = fill_upstream(self.parameters, values)
        return True

    def start(self) -> None:
        """Step 2."""
        run = self.run
        run.run_count += 1
        if run.start_time is None:
            run.start_time = time.time()
        self._set(Running() if run.run_count == 1 else Retrying())
        self._hooks(self.task.on_running)

    def call(self) -> Any:
        return self.task.call_with(self.parameters)

    @property
    def timeout(self) -> float | None:
        return self.task.timeout_seconds

    @property
    def label(self) -> str:
        return f"task run {self.run.name!r}"

    def returned(self, value: Any) -> None:
        """Step 4, returned."""
        self._set(value if isinstance(value, State) else Completed(value))

    def raised(self, exc: Exception) -> float | None:
        """Step 4, raised. Returns the delay before the next attempt, or None if final."""
        final = (TimedOut if isinstance(exc, RunTimedOut) else Failed)(exc)
        task, run = self.task, self.run
        retries_used = run.run_count - 1
        if retries_used < task.retries and self._should_retry(final):
            delay = task.retry_delay_for(retries_used)
            task_logger.info(
                "Task run failed with %s - retry %d/%d in %.3gs",
                final.message, retries_used + 1, task.retries, delay, extra=run_extra(),
            )
            self._set(AwaitingRetry(f"retry {retries_used + 1} of {task.retries} in {delay:.3g}s"))
            return delay
        self._set(final)
        if task_logger.isEnabledFor(40):
            task_logger.error(
                "Finished in state %s", final, exc_info=exc, extra=run_extra()
            )
        return None

    def _should_retry(self, failed: State) -> bool:
        condition = self.task.retry_condition_fn
        if condition is None:
            return True
        return bool(condition(self.task, self.run, failed))

    def interrupted(self, exc: BaseException) -> None:
        """Step 4, a BaseException: recorded now, re-raised by the driver after hooks."""
        state = Cancelled(exc) if _is_cancellation(exc) else Crashed(exc)
        self._set(state)
        self.reraise = exc

    def finish(self) -> State:
        """Step 5."""
        run = self.run
        state = run.state
        assert state is not None
        run.end_time = time.time()
        if state.type is StateType.COMPLETED:
            self._hooks(self.task.on_completion)
        elif state.type in (StateType.FAILED, StateType.CRASHED):
            self._hooks(self.task.on_failure)
        return state

    def _set(self, state: State) -> None:
        try:
            set_state(self.run, state)
        except InvalidTransition:
            current = self.run.state
            if current is None or not current.is_final():
                raise
            # The run was ended from outside (its flow was interrupted); that state stands.

    def _hooks(self, hooks: Sequence[Callable[..., Any]]) -> None:
        call_hooks(hooks, self.task, self.run, task_logger)


def run_task(payload: TaskRunPayload, upstream: Sequence[Any]) -> State:
    """The entrypoint runners execute: run one task run to a final state and return it."""
    if payload.task.is_async:
        return run_async(run_task_async, payload, upstream)
    engine = _TaskRunEngine(payload, upstream)
    token = task_run_var.set(engine.context())  # not a context manager: this is per task
    try:
        if engine.inputs_ready():
            run_attempts(engine)
    except BaseException as exc:
        engine.interrupted(exc)
    finally:
        state = engine.finish()
        task_run_var.reset(token)
    if engine.reraise is not None:
        raise engine.reraise
    return state


async def run_task_async(payload: TaskRunPayload, upstream: Sequence[Any]) -> State:
    """`run_task` for `async def` tasks, on the caller's event loop."""
    engine = _TaskRunEngine(payload, upstream)
    with entered(task_run_var, engine.context()):
        try:
            if engine.inputs_ready():
                await run_attempts_async(engine)
        except BaseException as exc:
            engine.interrupted(exc)
        state = engine.finish()
    if engine.reraise is not None:
        raise engine.reraise
    return state


def jittered(delay: float, jitter_factor: float | None) -> float:
    """`delay` stretched by up to `jitter_factor` of itself, at random (spreads retry storms)."""
    if not jitter_factor or delay <= 0:
        return delay
    return delay * (1 + random.uniform(0, jitter_factor))
