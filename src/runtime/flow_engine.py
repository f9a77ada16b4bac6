"""One flow run's lifecycle: parameters, the run context, the body, retries and the final state.

Order of work:

1. Parameters are bound (`ParameterBindError` at once, before any run exists) and, with
   `validate_parameters`, validated and coerced by pydantic; a validation error ends the new
   run FAILED and raises `ParameterValidationError`.
2. A fresh runner (`task_runner.duplicate()`) starts and, when the flow records, runs its
   preflight: a check of every worker it has (`runtime/worker_check.py`, `TaskRunner.preflight`).
   A runner that cannot start, or whose workers fail the check, ends the run CRASHED (its code
   never ran: something else ended it) with the error's message, runs `on_crashed` hooks, and
   the error is raised from the flow call (with `return_state=True` too, as an interrupt is),
   before any task run exists. Then PENDING -> RUNNING; `on_running` hooks.
3. The body runs (under `timeout_seconds`, see `timeouts.py`). Then the flow waits for every
   task run and subflow it started, returned or not.
4. The final state follows from what the body did:
   - raised an `Exception`: FAILED ("TimedOut" past `timeout_seconds`), or a retry;
   - raised another `BaseException`: an interrupt (Ctrl-C, SIGTERM, SystemExit) ends it
     CRASHED, its message naming the interrupt ("Flow run interrupted by KeyboardInterrupt
     (Ctrl-C)"), sync or async (under asyncio.run a Ctrl-C arrives as a cancellation:
     `signals.py`); any other cancellation, CANCELLED. Unfinished task runs are cancelled
     (running ones marked CRASHED), and the exception propagates;
   - returned a `State`: that state;
   - returned futures or states, alone or inside lists, tuples, sets, dicts or dataclasses:
     they are replaced by their results; if any of them did not complete, FAILED (with the
     first failure's exception), else COMPLETED;
   - returned anything else: COMPLETED with that value.
   A task run that failed but was not returned does not fail the flow. But a runner that lost
   its cluster mid-flow (a Dask scheduler or Ray head went away, `TaskRunner.lost()`, asked
   once the body is done and its runs have ended) ends the flow CRASHED with that error,
   whatever the body did, and without a retry: the runner it would retry on is gone.
   A FAILED attempt with retries left goes SCHEDULED("AwaitingRetry") -> RUNNING("Retrying").
5. Hooks for the final state run (`on_completion`, `on_failure`, `on_crashed`,
   `on_cancellation`); the runner shuts down; the caller gets the value, the exception
   raised, or with `return_state=True` the state.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import ParameterValidationError, RecordingError, RunTimedOut
from ..runners.base import TaskRunner
from .arguments import _ATOMS, _rebuild
from .attempts import run_attempts, run_attempts_async
from .collection import full_collections_deferred
from .cancellation import CancelInterrupt, FlowCancel
from . import pausing
from .context import FlowRunContext, entered, flow_run_var, task_run_var
from .engine import run_task
from .futures import RunFuture
from .hooks import call_hooks
from .logs import enable_log_prints, ensure_console_logging, flow_logger, run_extra
from .context import current_services
from . import slots
from .recording import confirm_recorded_away, refusal
from .adopted_run import take_adopted
from .run_tags import tags_in_effect
from .runs import FlowRun, new_run_id, set_state
from .scheduler import TaskScheduler
from .signals import ctrl_c_noted, interruption, sigterm_raises
from .worker_check import preflight_for
from .states import (
    AwaitingRetry,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Pending,
    Retrying,
    Running,
    State,
    StateType,
    TimedOut,
)

if TYPE_CHECKING:
    from .flows import Flow


class FlowRunEngine:
    """The state changes of one flow run; `run_flow` and `run_flow_async` drive it."""

    def __init__(self, flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.flow = flow
        parameters = flow.bind(args, kwargs)
        parent_flow = flow_run_var.get()
        parent_task = task_run_var.get()
        # A flow inside a task records where that task does (a subflow on a worker, say).
        self.services = parent_task.services if parent_task else current_services()
        self.reporter = self.services.reporter()
        adopted = take_adopted() if parent_flow is None and parent_task is None else None
        if adopted is None:
            self.run = FlowRun(
                new_run_id(),
                flow.run_name(parameters),
                flow.name,
                parameters,
                parent_flow.flow_run.id if parent_flow else None,
                parent_task.task_run.id if parent_task else None,
                tags=tags_in_effect(),
            )
        else:  # a deployment's run, created by the service: this process carries it on
            self.run = FlowRun(
                adopted.flow_run_id, adopted.name, flow.name, parameters, adopted.parent_flow_run_id,
                adopted.parent_task_run_id, tags=tuple(dict.fromkeys([*adopted.tags, *tags_in_effect()])),
            )
        self._set(Pending())
        self.parameters = parameters
        self.reraise: BaseException | None = None
        self.scheduler: TaskScheduler | None = None
        # After a timeout or an interrupt, running tasks are left to finish on their own
        # instead of holding up the flow's end.
        self.abandon_running = False
        self.cancel = FlowCancel(self)  # told by the state service's control stream
        self.pause = pausing.FlowPause(self)  # likewise: resumes and pause timeouts
        ensure_console_logging()
        if flow.log_prints:
            enable_log_prints()

    def validate(self) -> None:
        """Step 1, validation: coerce parameters, or end the run FAILED and raise."""
        try:
            self.parameters = self.flow.validate(self.parameters)
        except ParameterValidationError as exc:
            self._set(Failed(exc))
            raise

    def context(self, runner: TaskRunner) -> FlowRunContext:
        self.scheduler = TaskScheduler(runner, run_task)
        return FlowRunContext(
            self.flow, self.run, runner, self.scheduler, bool(self.flow.log_prints), self.services
        )

    def start_runner(self, runner: TaskRunner) -> None:
        """Step 2's start: the runner starts and checks its workers. If either fails, the run
        ends CRASHED (see the module docstring) and the error is raised."""
        try:
            runner.start()
            if type(runner).preflight is not TaskRunner.preflight:  # else nothing to build it for
                check = preflight_for(self.services)
                if check is not None:
                    runner.preflight(check)
        except Exception as exc:
            self._runner_did_not_start(runner, exc)
            raise

    def _runner_did_not_start(self, runner: TaskRunner, exc: Exception) -> None:
        try:
            runner.shutdown(wait=False, cancel_futures=True)
        except Exception as shutdown_error:  # the start's error is the one to raise
            flow_logger.warning("The task runner did not shut down cleanly: %s", shutdown_error)
        self._set(Crashed(exc, f"the task runner did not start: {type(exc).__name__}: {exc}"))
        self.finish()
        try:
            self.make_durable()
        except RecordingError:  # logged by make_durable; the runner's error says why
            pass

    def start(self) -> None:
        run = self.run
        run.run_count += 1
        if run.start_time is None:
            run.start_time = time.time()
            pausing.register(self)
            if self.reporter is not None:
                self.reporter.flow_started(run.id)
                self.cancel.watch()
            flow_logger.info(
                "Beginning flow run %r for flow %r", run.name, self.flow.name, extra=run_extra(lifecycle=True)
            )
        self._set(Running() if run.run_count == 1 else Retrying())
        self._hooks(self.flow.on_running)

    def on_control_message(self, message: Any) -> None:
        """A control message for this run, on the control stream's thread: a cancel, a resume,
        a rejection or a pause's timeout. A cancel also wakes a paused body."""
        self.cancel.on_message(message)
        self.pause.on_message(message)

    @property
    def timeout(self) -> float | None:
        return self.flow.timeout_seconds

    @property
    def label(self) -> str:
        return f"flow run {self.run.name!r}"

    def call(self) -> Any:
        return self.flow.call_with(self.parameters)

    def returned(self, value: Any) -> float | None:
        """Steps 3-4 after the body returned. Returns a retry delay, or None when final."""
        self.wait_for_runs()
        if self._cancelled() or pausing.ended_by_service(self, None):
            return None
        if self._runner_lost():
            return None
        state = final_state_of(value)
        if state.type is StateType.FAILED:
            return self._failed(state)
        self._set(state)
        return None

    def raised(self, exc: Exception) -> float | None:
        if self.cancel.requested:  # what it raised is what the cancel ended (a CancelledRun)
            self.wait_for_runs()
            self._cancelled()
            return None
        if pausing.ended_by_service(self, exc):  # a pause timed out or was rejected: the service ended the run
            self.wait_for_runs()
            return None
        if isinstance(exc, RunTimedOut):
            self._cancel_unfinished(str(exc))
            return self._failed(TimedOut(exc))
        self.wait_for_runs()
        if self._runner_lost():
            return None
        return self._failed(Failed(exc))

    def _cancelled(self) -> bool:
        """A cancelled run ends CANCELLED whatever its body did, naming what it interrupted."""
        if not self.cancel.requested:
            return False
        self._set(Cancelled(message=self.cancel.message()))
        return True

    def _runner_lost(self) -> bool:
        """End the run CRASHED if its runner lost its cluster while the flow ran."""
        error = self.scheduler.runner.lost() if self.scheduler is not None else None
        if error is None:
            return False
        self._set(Crashed(error, f"the task runner lost its cluster: {error}"))
        return True

    def _cancel_unfinished(self, reason: str) -> None:
        self.abandon_running = True
        if self.scheduler is not None:
            self.scheduler.cancel_unfinished(reason)

    def _failed(self, state: State) -> float | None:
        flow, run = self.flow, self.run
        retries_used = run.run_count - 1
        if retries_used < flow.retries:
            delay = flow.retry_delay_for(retries_used)
            flow_logger.info(
                "Flow run failed with %s - retry %d/%d in %.3gs",
                state.message, retries_used + 1, flow.retries, delay, extra=run_extra(lifecycle=True),
            )
            self._set(AwaitingRetry(f"retry {retries_used + 1} of {flow.retries}"))
            return delay
        self._set(state)
        return None

    def wait_for_runs(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wait_all()

    def interrupted(self, exc: BaseException) -> None:
        """A BaseException ended the body: end what has not finished, record, re-raise later."""
        if self.cancel.requested and isinstance(exc, (CancelInterrupt, asyncio.CancelledError)):
            self.wait_for_runs()  # the interrupted runs record their own CANCELLED
            self._cancelled()
            return
        cause = interruption(exc)
        self.abandon_running = True
        if self.scheduler is not None:
            ended = "was cancelled" if cause is None else f"was interrupted by {cause}"
            self.scheduler.cancel_unfinished(f"flow run {self.run.name!r} {ended}", crash_running=True)
        self._set(Cancelled(exc) if cause is None else Crashed(exc, f"Flow run interrupted by {cause}"))
        self.reraise = exc

    def finish(self) -> State:
        run = self.run
        state = run.state
        assert state is not None
        run.end_time = time.time()
        hooks = {
            StateType.COMPLETED: self.flow.on_completion,
            StateType.FAILED: self.flow.on_failure,
            StateType.CRASHED: self.flow.on_crashed,
            StateType.CANCELLED: self.flow.on_cancellation,
        }.get(state.type, ())
        self._hooks(hooks)
        log = flow_logger.info if state.type is StateType.COMPLETED else flow_logger.error
        log("Finished in state %s", state, extra=run_extra(lifecycle=True))
        self.cancel.unwatch()
        pausing.unregister(self)
        if self.reporter is not None:
            self.reporter.flow_finished(run.id)
        journal = sys.modules.get("headwater.runtime.journal")  # loaded once a task cached
        if journal is not None:
            journal.flush_journals()  # so `headwater cache explain` knows the runs at once
        slots.settle()  # the slots its runs held are given back before the flow returns
        return state

    def make_durable(self) -> None:
        """A top-level flow's end: wait until every run it made is recorded, or raise
        `RecordingError` naming those that are not: its own, its task runs', its subflows'
        (the recorder keeps each loss for the flows it concerns, whichever flush saw it), and
        those that workers reported they could not record. Also when the state service
        refused the flow run's states (it declared the run crashed). The error carries the
        final state, so a result computed but not recorded is not lost."""
        run = self.run
        if self.reporter is None:
            return
        if self.scheduler is not None and self.scheduler.recorded_away:
            confirm_recorded_away(self.services, self.reporter, run.id, self.scheduler.recorded_away)
            self.scheduler.recorded_away.clear()
        if run.parent_flow_run_id or run.parent_task_run_id:
            return  # the top-level flow's end waits for everything, this flow's runs included
        try:
            lost: RecordingError | None = None
            try:
                self.reporter.flush(run.id)
            except RecordingError as exc:
                lost = exc
            refused = refusal(self.services, self.reporter, run)
            if refused is not None:
                error = RecordingError(refused, {run.id})
                error.state = run.state
                raise error
            unrecorded = self.scheduler.unrecorded if self.scheduler is not None else {}
            if unrecorded:
                reason = f"workers could not record some task runs ({next(iter(unrecorded.values()))})"
                if lost is not None:
                    reason = f"{str(lost).split('; unrecorded runs:')[0]}; {reason}"
                error = RecordingError(reason, set(unrecorded) | (lost.run_ids if lost else set()))
                error.state = run.state
                raise error
            if lost is not None:
                lost.state = run.state
                raise lost
        except Exception as exc:
            flow_logger.error("Runs of flow run %r are not recorded: %s", run.name, exc)
            raise

    def _set(self, state: State) -> None:
        set_state(self.run, state, self.reporter)

    def _hooks(self, hooks: Sequence[Callable[..., Any]]) -> None:
        call_hooks(hooks, self.flow, self.run, flow_logger)


def final_state_of(value: Any) -> State:
    """The flow's final state for what its body returned (rules in the module docstring)."""
    if isinstance(value, State):
        return value
    failures: list[State] = []

    def resolve(item: Any) -> Any:
        kind = type(item)
        if kind in _ATOMS:
            return item
        if isinstance(item, RunFuture):
            item.wait()
            item = item.state
        if isinstance(item, State):
            if not item.is_completed():
                failures.append(item)
                return item.result(raise_on_failure=False)
            try:
                return item.result()  # fetched here if the runner left it where it ran
            except Exception as exc:  # it could not be fetched: the flow cannot return it
                failures.append(Failed(exc))
                return exc
        return _rebuild(item, resolve)

    resolved = resolve(value)
    if failures:
        first = failures[0]
        exc = first.result(raise_on_failure=False)
        message = f"{len(failures)} returned run(s) did not complete; first: {first}"
        return Failed(exc, message)
    return Completed(resolved)


def run_flow(engine: FlowRunEngine) -> State:
    """Drive a sync flow run from start to its final state."""
    with full_collections_deferred():  # its runs live until it ends: see `collection.py`
        return _run_flow(engine)


def _run_flow(engine: FlowRunEngine) -> State:
    engine.validate()
    runner = engine.flow.task_runner.duplicate()
    engine.start_runner(runner)
    try:
        with entered(flow_run_var, engine.context(runner)), sigterm_raises():
            try:
                run_attempts(engine)
            except BaseException as exc:
                engine.interrupted(exc)
            state = engine.finish()
    finally:
        runner.shutdown(wait=not engine.abandon_running, cancel_futures=engine.abandon_running)
        engine.make_durable()
    if engine.reraise is not None:
        raise engine.reraise
    return state


async def run_flow_async(engine: FlowRunEngine) -> State:
    """Drive an `async def` flow run on the caller's event loop."""
    with full_collections_deferred():
        return await _run_flow_async(engine)


async def _run_flow_async(engine: FlowRunEngine) -> State:
    engine.validate()
    runner = engine.flow.task_runner.duplicate()
    engine.start_runner(runner)
    try:
        with entered(flow_run_var, engine.context(runner)), ctrl_c_noted():
            engine.cancel.body_loop, engine.cancel.body_task = asyncio.get_running_loop(), asyncio.current_task()
            try:
                await run_attempts_async(engine, settle_in_thread=True)
            except BaseException as exc:
                if engine.cancel.requested and isinstance(exc, asyncio.CancelledError):
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()  # the cancel was for this body, not for its caller
                engine.interrupted(exc)
            engine.cancel.body_task = None
            state = engine.finish()
    finally:
        runner.shutdown(wait=not engine.abandon_running, cancel_futures=engine.abandon_running)
        await anyio.to_thread.run_sync(engine.make_durable)
    if engine.reraise is not None:
        raise engine.reraise
    return state
