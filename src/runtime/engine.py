"""One attempt of a task run, wherever it runs: the entrypoint every runner executes.

The order of work, fixed and the same on every runner:

0. The run's services resolve in this process (`recording.py`): a worker away from the
   flow re-announces the run to the state service before its first state.
1. Inputs: each upstream's outcome arrives (a remote runner resolves its own futures where
   the call runs). If an upstream the run needs did not complete (and was not wrapped in
   `allow_failure`), the run ends PENDING("NotReady") without running. A cached task asks its
   cache now, before any upstream value is loaded (`caching.py`): a hit ends the run
   COMPLETED("Cached") without running. Otherwise the refs in
   the arguments are replaced by the upstream values (fetched if they were left remote; a
   value that cannot be fetched ends the run FAILED with the error, or CRASHED for a value
   lost with its worker, `UpstreamLost`).
2. PENDING -> RUNNING (or SCHEDULED("AwaitingRetry") -> RUNNING("Retrying")); `on_running`
   hooks run.
3. The function runs, under `timeout_seconds` if set (see `timeouts.py` for what a timeout
   can interrupt).
4. It returned: COMPLETED with the value (a returned `State` is used as the final state; a
   cached task's value is stored first).
   It raised an `Exception`: if retries remain and `retry_condition_fn` agrees, the run goes
   to SCHEDULED("AwaitingRetry") and the attempt ends there with the delay (with jitter): the
   flow's lifecycle waits it out and dispatches the run again, so no worker sleeps; otherwise
   FAILED (named "TimedOut" for a timeout). It raised a `BaseException` that is not an
   `Exception`: an interrupt (Ctrl-C, SIGTERM, SystemExit; under asyncio.run a Ctrl-C arrives
   as a cancellation, `signals.py`) ends it CRASHED with a message naming the interrupt, any
   other cancellation CANCELLED; the exception is re-raised after step 5 so interrupts still
   stop the program.
5. On a final state, `on_completion` or `on_failure` hooks run. Away from the flow's process
   the run's records are made durable. The attempt returns a `RunOutcome`.

A direct call (`task(x)`, no runner) runs every attempt in the caller's thread
(`run_task_now`). Sync and async tasks share `_TaskRunEngine`; only the small drivers differ.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio

from ..errors import CrashedRun, InvalidTransition, RunTimedOut
from .cancellation import CancelInterrupt, interruptible, interruptible_async
from .arguments import fill_upstream
from .context import TaskRunContext, entered, task_run_var
from .hooks import call_hooks
from .logs import run_extra, task_logger
from .portal import run_async
from .timeouts import call_with_timeout, call_with_timeout_async
from .recording import RunServices
from .runs import TaskRun, set_state
from .signals import interruption
from .slots import attempt_with_slots, attempt_with_slots_async
from .states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Detached,
    Failed,
    NotReady,
    Retrying,
    Running,
    State,
    StateType,
    TimedOut,
)

if TYPE_CHECKING:
    from .caching import CacheStep
    from .tasks import Task


class TaskRunPayload(NamedTuple):
    """What the engine needs to run one task run, picklable for remote runners: the task (it
    pickles as its function and options), the run record, the arguments with `UpstreamRef`s
    where upstream values go, which upstreams must have completed, and the run's services.

    A NamedTuple, immutable as a frozen dataclass but built per task run with `tuple.__new__`
    in a fraction of the time (the hot path; see `Task._prepare`)."""

    task: Task[..., Any]
    task_run: TaskRun
    parameters: dict[str, Any]
    required: frozenset[int]  # upstream indexes that must complete for the run to start
    log_prints: bool
    services: RunServices
    # the flow run's parameters, for a cached task's key (FLOW_PARAMETERS); None otherwise
    flow_parameters: Mapping[str, Any] | None = None


class RunOutcome(NamedTuple):
    """What an attempt returns to the flow: its last state and the run's bookkeeping.

    `state` is final, or SCHEDULED("AwaitingRetry") with `retry_delay` set: the flow's
    lifecycle waits the delay without holding a worker and dispatches the run again.
    `earlier` holds the states the attempt went through before `state` (none carry data), so
    a flow whose run executed elsewhere can bring its own record up to date (`adopt_into`).
    `recorded_away` is true when the attempt's states were recorded by a process other than
    the flow's (a worker): the flow confirms at its end that they arrived (`recording.py`).
    `unrecorded` says why a worker could not make the run's records durable, if it could not.
    `cache_key` is the run's cache key when it completed with one: a downstream cached run's
    key is made from it (lineage) without loading the value.

    A NamedTuple rather than a frozen dataclass: one is made per attempt on the hot path, and
    the engine builds it with `tuple.__new__` in a fraction of a dataclass's time.
    """

    state: State
    earlier: Sequence[State] = ()
    run_count: int = 0
    start_time: float | None = None
    end_time: float | None = None
    retry_delay: float | None = None
    unrecorded: str | None = None
    recorded_away: bool = False
    cache_key: str | None = None

    def detach(self, handle: Any) -> RunOutcome:
        """This outcome with its state's data left where it is, behind `handle` (data that is
        already a handle, such as a cached value's, travels as it is)."""
        data = self.state.data
        if data is None or type(data) is Detached:
            return self
        return self._replace(state=self.state.with_data(Detached(handle)))

    def adopt_into(self, run: TaskRun) -> None:
        """Bring the flow's record of the run up to date. An in-process runner's engine
        changed that very record already; a run the flow has ended meanwhile stays ended."""
        current = run.state
        if current is self.state or (current is not None and current.is_final()):
            return
        run.history.extend(self.earlier)
        run.history.append(self.state)
        run.state = self.state
        run.run_count = self.run_count
        run.start_time = self.start_time
        run.end_time = self.end_time


_tuple_new = tuple.__new__


def outcome_of(state: State) -> RunOutcome:
    """An outcome for a run that was not dispatched by a runner (a subflow, say)."""
    return RunOutcome(state)


class _TaskRunEngine:
    """The state changes of one attempt of a task run; the drivers below sequence them."""

    __slots__ = (
        "task", "run", "payload", "upstream", "parameters", "log_prints", "reraise",
        "reporter", "first_index", "retry_delay", "cache_step", "inputs_loaded",
    )  # fmt: skip

    def __init__(self, payload: TaskRunPayload, upstream: Sequence[Any]) -> None:
        self.payload = payload
        self.task = payload.task
        self.run = run = payload.task_run
        self.upstream = upstream
        self.parameters: dict[str, Any] = payload.parameters
        self.log_prints = payload.log_prints
        self.reraise: BaseException | None = None
        self.retry_delay: float | None = None
        self.first_index = len(run.history)
        self.reporter = reporter = payload.services.reporter()
        if reporter is not None and not reporter.home:
            reporter.adopt(run)
        self.inputs_loaded = not upstream
        self.cache_step: CacheStep | None = None
        cache = payload.task.cache
        if cache is not None:
            from .caching import CacheStep

            self.cache_step = CacheStep(cache, self)

    def context(self) -> TaskRunContext:
        return TaskRunContext(self.task, self.run, self.log_prints, self.payload.services, self.parameters)

    def upstreams_completed(self) -> bool:
        """Step 1a. False when an upstream the run needs did not complete: the run ends
        PENDING("NotReady") without running."""
        if not self.upstream:
            return True
        for index in self.payload.required:
            state = self.upstream[index].state
            if state.type is not StateType.COMPLETED:
                self._set(NotReady(f"upstream run ended {state}; this run did not start"))
                return False
        return True

    def answered_by_cache(self) -> bool:
        """Step 1b, for a cached task: True when the cache answered the run (`caching.py`)."""
        step = self.cache_step
        return step is not None and step.answered()

    def load_inputs(self) -> bool:
        """Step 1c. False when the run ended FAILED (CRASHED for `UpstreamLost`) because an
        upstream's value could not be fetched from where it was left."""
        if self.inputs_loaded:
            return True
        try:
            values = tuple(
                s.data if s.type is StateType.COMPLETED and type(s.data) is not Detached
                else s.result(raise_on_failure=False)
                for s in (outcome.state for outcome in self.upstream)
            )
        except Exception as exc:  # a value left where its run ran could not be brought here
            self._set((Crashed if isinstance(exc, CrashedRun) else Failed)(exc))
            return False
        self.parameters = fill_upstream(self.parameters, values)
        self.inputs_loaded = True
        context = task_run_var.get()
        if context is not None and context.task_run is self.run:  # this attempt's context
            context.parameters = self.parameters  # `task_run.parameters`: values, not refs
        return True

    def key_failed(self, exc: Exception) -> None:
        """A cached task's key could not be made: the run ends FAILED with why, unstarted."""
        self._set(Failed(exc, f"the cache key could not be made: {type(exc).__name__}: {exc}"))

    def cache_hit(self, handle: Any, message: str) -> None:
        """The cache answered: RUNNING, then COMPLETED("Cached") with the value left in the
        cache behind `handle`; the function is not called and `on_running` hooks do not run."""
        run = self.run
        run.run_count += 1
        if run.start_time is None:
            run.start_time = time.time()
        self._set(Running())
        self._set(Cached(Detached(handle), message))

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
        """Step 4, returned (a cached task's value is stored first)."""
        if isinstance(value, State):
            self._set(value)
            return
        step = self.cache_step
        self._set(Completed(value if step is None else step.store_value(value)))

    def raised(self, exc: Exception) -> None:
        """Step 4, raised: a retry is due (`retry_delay` set), or the run failed."""
        final = (TimedOut if isinstance(exc, RunTimedOut) else Failed)(exc)
        task, run = self.task, self.run
        retries_used = task.failures_counted(run)
        if retries_used < task.retries and self._should_retry(final):
            delay = task.retry_delay_for(retries_used)
            task_logger.info(
                "Task run failed with %s - retry %d/%d in %.3gs",
                final.message, retries_used + 1, task.retries, delay, extra=run_extra(lifecycle=True),
            )
            self._set(AwaitingRetry(f"retry {retries_used + 1} of {task.retries} in {delay:.3g}s"))
            self.retry_delay = delay
            return
        self._set(final)
        if task_logger.isEnabledFor(40):
            task_logger.error(
                "Finished in state %s", final, exc_info=exc, extra=run_extra(lifecycle=True)
            )

    def _should_retry(self, failed: State) -> bool:
        condition = self.task.retry_condition_fn
        if condition is None:
            return True
        return bool(condition(self.task, self.run, failed))

    def interrupted(self, exc: BaseException) -> None:
        """Step 4, a BaseException: recorded now, re-raised by the driver after hooks."""
        cause = interruption(exc)
        state = Cancelled(exc) if cause is None else Crashed(exc, f"Task run interrupted by {cause}")
        self.retry_delay = None
        if isinstance(exc, CancelInterrupt):  # its flow was cancelled: this attempt alone ends
            state = Cancelled(message="interrupted: its flow run was cancelled")
            self._set(state)
            return
        self._set(state)
        self.reraise = exc

    def finish(self) -> RunOutcome:
        """Step 5, and the outcome of this attempt."""
        run = self.run
        state = run.state
        assert state is not None
        if self.retry_delay is None:
            run.end_time = time.time()
            if state.type is StateType.COMPLETED:
                self._hooks(self.task.on_completion)
            elif state.type in (StateType.FAILED, StateType.CRASHED):
                self._hooks(self.task.on_failure)
        cache_key = None
        step = self.cache_step
        if step is not None:
            completed = state.type is StateType.COMPLETED
            step.finished(completed)
            cache_key = step.key if completed else None
        reporter = self.reporter
        unrecorded, away = None, False
        if reporter is not None and not reporter.home:  # recorded here, away from the flow
            unrecorded, away = reporter.settle(run.id), True
        earlier = run.history[self.first_index : -1]
        return _tuple_new(
            RunOutcome,
            (state, earlier, run.run_count, run.start_time, run.end_time, self.retry_delay, unrecorded, away,
             cache_key),
        )  # fmt: skip

    def _set(self, state: State) -> None:
        try:
            set_state(self.run, state, self.reporter)
        except InvalidTransition:
            current = self.run.state
            if current is None or not current.is_final():
                raise
            # The run was ended from outside (its flow was interrupted); that state stands.

    def _hooks(self, hooks: Sequence[Callable[..., Any]]) -> None:
        call_hooks(hooks, self.task, self.run, task_logger)


def _attempt(engine: _TaskRunEngine) -> None:
    engine.start()
    timeout = engine.timeout
    try:
        with interruptible(engine.run):  # a cancel of its flow raises CancelInterrupt here
            value = engine.call() if timeout is None else call_with_timeout(engine.call, timeout, engine.label)
    except Exception as exc:
        engine.raised(exc)
    else:
        engine.returned(value)


async def _attempt_async(engine: _TaskRunEngine) -> None:
    engine.start()
    try:
        with interruptible_async(engine.run) as attempt:  # a cancel of its flow cancels this task
            try:
                value = await call_with_timeout_async(engine.call, engine.timeout, engine.label)
            except asyncio.CancelledError:
                if attempt is None or not attempt.interrupted:
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()  # the cancel was for this attempt alone, not its caller
                raise CancelInterrupt() from None
    except Exception as exc:
        engine.raised(exc)
    else:
        engine.returned(value)


def run_task(payload: TaskRunPayload, upstream: Sequence[Any]) -> RunOutcome:
    """The entrypoint runners execute: one attempt of a task run, to a final state or to
    AwaitingRetry. `upstream` holds the upstream runs' outcomes, in the order of their refs."""
    if payload.task.is_async:
        return run_async(run_task_async, payload, upstream)
    engine = _TaskRunEngine(payload, upstream)
    token = task_run_var.set(engine.context())  # not a context manager: this is per task
    try:
        if engine.upstreams_completed() and not engine.answered_by_cache() and engine.load_inputs():
            _attempt(engine)
    except BaseException as exc:
        engine.interrupted(exc)
    finally:
        outcome = engine.finish()
        task_run_var.reset(token)
    if engine.reraise is not None:
        raise engine.reraise
    return outcome


async def run_task_async(payload: TaskRunPayload, upstream: Sequence[Any]) -> RunOutcome:
    """`run_task` for `async def` tasks, on the caller's event loop."""
    engine = _TaskRunEngine(payload, upstream)
    with entered(task_run_var, engine.context()):
        try:
            if engine.upstreams_completed() and not engine.answered_by_cache() and engine.load_inputs():
                await _attempt_async(engine)
        except BaseException as exc:
            engine.interrupted(exc)
        outcome = engine.finish()
    if engine.reraise is not None:
        raise engine.reraise
    return outcome


def answer_from_cache_here(payload: TaskRunPayload, upstream: Sequence[RunOutcome]) -> RunOutcome | None:
    """For a run about to go to a cluster: if its cache can answer it here, in the flow's
    process, end it Cached now and return its outcome; None to send it on. Only when its key
    needs no upstream value (no upstream, or each has a key: lineage) and no key function, and
    without single flight (whose wait belongs on a worker), so the flow never loads data to
    look up a key. Spares a hit the cluster's round trip."""
    cache = payload.task.cache
    if cache is None or cache.refresh or cache.key_fn is not None:
        return None
    if cache.policy is not None and cache.policy.isolation_level == "SERIALIZABLE":
        return None
    if any(outcome.cache_key is None for outcome in upstream):
        return None
    engine = _TaskRunEngine(payload, upstream)
    token = task_run_var.set(engine.context())
    try:
        # An upstream that did not complete ends the run NotReady here; that is its answer.
        if engine.upstreams_completed() and not engine.answered_by_cache():
            return None  # a miss: nothing about the run changed
    finally:
        task_run_var.reset(token)
    return engine.finish()


def run_task_now(payload: TaskRunPayload, upstream: Sequence[Any]) -> State:
    """Every attempt of a task run in this thread, sleeping between them: a direct call. A
    run with tags waits here for the slots of those that name a limit (`slots.py`)."""
    while True:
        if payload.task_run.tags:
            outcome: RunOutcome = attempt_with_slots(payload, upstream, run_task)
        else:
            outcome = run_task(payload, upstream)
        if outcome.retry_delay is None:
            return outcome.state
        time.sleep(outcome.retry_delay)


async def run_task_now_async(payload: TaskRunPayload, upstream: Sequence[Any]) -> State:
    while True:
        if payload.task_run.tags:
            outcome: RunOutcome = await attempt_with_slots_async(payload, upstream, run_task_async)
        else:
            outcome = await run_task_async(payload, upstream)
        if outcome.retry_delay is None:
            return outcome.state
        await anyio.sleep(outcome.retry_delay)


def jittered(delay: float, jitter_factor: float | None) -> float:
    """`delay` stretched by up to `jitter_factor` of itself, at random (spreads retry storms)."""
    if not jitter_factor or delay <= 0:
        return delay
    return delay * (1 + random.uniform(0, jitter_factor))
