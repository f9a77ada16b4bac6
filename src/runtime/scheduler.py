"""The driver between the pure `RunLifecycle` and a task runner, one per flow run.

It turns what happens (a submit, an upstream finishing, a runner future completing, a retry
timer firing, the flow asking to cancel) into lifecycle events and carries out the
instructions that come back: dispatch a call to the runner, watch an upstream, complete a
future, start a timer, revoke a queued call, record a state the engine never set (a lost
attempt's AwaitingRetry, a run's end). It decides nothing itself: what a lost attempt means
is `losses.py`'s verdict, which it counts on the flow's record and feeds to the lifecycle.

It consumes outcomes only: a runner future's `result()` is the attempt's `RunOutcome`, whose
data may have stayed where the run ran. The outcome is applied to the flow's own record of
the run (`RunOutcome.adopt_into`), so the flow's view and the state service agree whatever
the runner. It keeps a run's call only until the run is finished (retries send it again), so
a result lives exactly as long as the user keeps its future.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError
from functools import partial
from typing import Any
from uuid import UUID

from ..errors import InvalidTransition, WorkerLost
from ..runners.base import FinishedFuture, TaskCall, TaskRunner
from .cancellation import CancelInterrupt
from .engine import RunOutcome, TaskRunPayload, answer_from_cache_here, outcome_of
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
    Premature,
    Requeue,
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
from .losses import counts_as_attempt, judge_lost_attempt
from . import slots
from .runs import set_state
from .slots import limited_tags
from .states import AwaitingRetry, Cancelled, Crashed, Failed, Retrying, Running, State, StateType

_tuple_new = tuple.__new__

RunnerEntrypoint = Callable[[Any, tuple[Any, ...]], RunOutcome]


class TaskScheduler:
    """Feeds a flow run's task runs through the lifecycle to `runner`. See the module docstring.

    The lifecycle names each run by its `TaskFuture` (hashed by identity), which also holds
    the run's call parts while it is unfinished and its latest outcome."""

    def __init__(self, runner: TaskRunner, entrypoint: RunnerEntrypoint) -> None:
        self.runner = runner
        self._entrypoint = entrypoint
        self._chains = runner.starts_after_upstreams
        self._runs_inline = runner.runs_inline
        # Only runners with per-call settings are asked for them (a call per submit otherwise).
        captures = type(runner).submission_options is not TaskRunner.submission_options
        self._capture_options = runner.submission_options if captures else None
        self._lifecycle = RunLifecycle()
        self._refusing: str | None = None
        self._lock = threading.Lock()
        self._events: deque[Event] = deque()  # queued while another thread held the lock
        self._tracked: dict[UUID, RunFuture[Any]] = {}  # subflows submitted in this flow
        self._all_done = threading.Condition(threading.Lock())
        self._someone_waits = False  # notify only when wait_all is blocked: saves a lock per run
        #: run id -> why a worker could not make that run's records durable
        self.unrecorded: dict[UUID, str] = {}
        #: run id -> the states a worker recorded for it, as the flow adopted them (without
        #: data), for the flow's end to confirm they arrived (`confirm_recorded_away`)
        self.recorded_away: dict[UUID, tuple[State, ...]] = {}

    # -- what happens ------------------------------------------------------------------------

    def refuse_submits(self, reason: str) -> None:
        """The flow run was cancelled: its body's next submit raises `CancelInterrupt`."""
        self._refusing = reason

    def submit(self, future: TaskFuture[Any], payload: TaskRunPayload, upstream: list[RunFuture[Any]]) -> None:
        if self._refusing is not None:  # its run exists (Pending): it ends, never to start
            future.payload = payload
            reason = f"flow run cancelled ({self._refusing}): no new task runs"
            self._finish(future, outcome_of(_record(future, Cancelled(message=reason), late=False)))
            raise CancelInterrupt(reason)
        future.scheduler = self
        future.payload = payload
        future.upstream = upstream
        if self._capture_options is not None:  # here, in the caller's thread and context
            try:
                future.options = self._capture_options(payload.task.runner_options)
            except Exception as exc:  # options the runner refuses: the run fails, saying why
                self._finish(future, outcome_of(_record(future, Failed(exc, f"{type(exc).__name__}: {exc}"))))
                return
        waiting = tuple([u for u in upstream if not u.done()]) if upstream else ()
        limited = payload.task_run.tags and limited_tags(payload.services, payload.task_run.tags)
        if waiting and self._chains and not limited and all([self._chainable(u) for u in waiting]):
            future.eager, waiting = True, ()  # the runner starts it once they finish
        if not waiting and self._lock.acquire(blocking=False):  # the common case, as `_apply`
            try:
                self._lifecycle.submitted_ready(future)
            finally:
                self._lock.release()
            self._dispatch(future)
            if self._events:
                self._execute(self._drain())
            return
        instructions = self._apply(self._lifecycle.submitted, Submitted(future, waiting))
        if len(instructions) == 1 and type(instructions[0]) is Dispatch:
            self._dispatch(instructions[0].run_id)  # type: ignore[arg-type]  # the common case
        elif instructions:
            self._execute(instructions)

    def _chainable(self, upstream: RunFuture[Any]) -> bool:
        """Whether a run may be handed over before `upstream` finishes: it is a call of this
        flow's runner, already handed over, whose outcome will be final (a task without
        retries: a retry would be a new call, which the early hand-over could not follow)."""
        if type(upstream) is not TaskFuture or upstream.scheduler is not self:
            return False
        payload = upstream.payload
        if payload is None or upstream.runner_future is None:
            return False
        task = payload.task
        return task.retries == 0 and not task.crash_retries

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

    def _feed(self, event: Event) -> None:
        instructions = self._apply(self._lifecycle.handle, event)
        if instructions:
            self._execute(instructions)

    def _apply(self, handler: Callable[[Any], list[Instruction]], event: Event) -> list[Instruction]:
        """`handler(event)` on the lifecycle, without ever blocking on its lock.

        Events come from the flow's thread and from every worker thread finishing a run. A
        thread that finds the lock taken queues its event and leaves; the holder applies the
        queue before it is done (`_drain`). Blocking instead made a convoy: a thread waiting
        on the lock gives up the GIL and, once the lock is free, waits up to a switch interval
        (5 ms) to get the GIL back, while the other workers starve for new runs (measured: a
        third of the thread runner's throughput)."""
        lock = self._lock
        if not lock.acquire(blocking=False):
            self._events.append(event)
            return self._drain()  # the holder may have let go meanwhile
        try:
            instructions = handler(event)
        finally:
            lock.release()
        if self._events:
            instructions = instructions + self._drain()
        return instructions

    def _drain(self) -> list[Instruction]:
        """Apply queued events while the lock can be had; what is queued after a release is
        applied by the thread that queued it (it tries the lock after appending)."""
        events, lock, handle = self._events, self._lock, self._lifecycle.handle
        instructions: list[Instruction] = []
        while events and lock.acquire(blocking=False):
            try:
                while events:
                    instructions += handle(events.popleft())
            finally:
                lock.release()
        return instructions

    def _upstream_finished(self, upstream: RunFuture[Any]) -> None:
        self._feed(UpstreamFinished(upstream))

    def _attempt_done(self, future: TaskFuture[Any], runner_future: Any) -> None:
        if future.slot is not None:
            self._release_slots(future, now=True)
        try:
            outcome: RunOutcome = runner_future.result()
        except BaseException as exc:
            # The attempt was lost. Its runner future would fail to resolve where a downstream
            # runs; dropping it makes downstreams get the outcome made here instead, so their
            # engine ends them NotReady.
            future.runner_future = None
            if future.eager and self._premature(future):
                return
            if isinstance(exc, CancelledError):
                future.outcome = None  # an earlier attempt's, which `_end` must not read
                # A runner that cannot tell whether a call started (Dask) withdraws it either way.
                why = "cancelled before it started" if self._refusing is None else f"flow run cancelled ({self._refusing})"
                self._feed(AttemptLost(future, StateType.CANCELLED, why))
            else:
                self._lost(future, exc)
            return
        run = future.task_run
        if run.state is not outcome.state:  # else the engine changed our record
            outcome.adopt_into(run)
            if outcome.recorded_away and run.state is outcome.state:
                self.recorded_away[future.run_id] = _without_data(run.history)
        future.outcome = outcome
        if outcome.unrecorded is not None:
            self.unrecorded[future.run_id] = outcome.unrecorded
        if outcome.retry_delay is None and self._lock.acquire(blocking=False):  # as `_apply`
            try:
                resolved = self._lifecycle.attempt_resolved(future)
            finally:
                self._lock.release()
            if resolved:
                self._finish(future, outcome)
            if self._events:
                self._execute(self._drain())
            return
        event = AttemptEnded(future, outcome.retry_delay)
        instructions = self._apply(self._lifecycle.attempt_ended, event)
        if len(instructions) == 1 and type(instructions[0]) is Resolve:
            done: Any = instructions[0].run_id
            self._finish(done, done.outcome)  # the common case, without the general loop
        elif instructions:
            self._execute(instructions)

    def _premature(self, future: TaskFuture[Any]) -> bool:
        """A run handed over before its upstreams finished failed with the runner's error:
        if an upstream did not complete, that is why, and the run never started. It waits for
        its upstreams and is handed over again (its engine then ends it NotReady)."""
        future.eager = False
        unfinished = [u for u in future.upstream or () if not (u.done() and u.state.is_completed())]
        if not unfinished:
            return False  # its upstreams completed: the attempt itself was lost
        self._feed(Premature(future, tuple([u for u in unfinished if not u.done()])))
        return True

    def _lost(self, future: TaskFuture[Any], error: BaseException) -> None:
        """The attempt's outcome will not come back. An attempt that reached a worker is counted
        on the flow's record; `losses` says whether the run is tried again or how it ends."""
        run = future.task_run
        if counts_as_attempt(error):
            _count_lost_attempt(future)
        verdict = judge_lost_attempt(future.payload.task, error, run.run_count, run.lost_attempts)
        future.outcome = outcome_of(State(verdict.type, _FINAL_NAMES[verdict.type], verdict.reason, error))
        self._feed(AttemptLost(future, verdict.type, verdict.reason, verdict.retry_delay))

    # -- carrying out instructions -----------------------------------------------------------

    def _execute(self, instructions: list[Instruction]) -> None:
        for instruction in instructions:
            kind = type(instruction)
            future: Any = instruction.run_id
            if kind is Dispatch:
                self._dispatch(future)
            elif kind is Resolve:
                self._finish(future, future.outcome)
            elif kind is Watch:
                future.add_done_callback(self._upstream_finished)
            elif kind is StartTimer:
                self._start_timer(instruction)  # type: ignore[arg-type]
            elif kind is End:
                self._end(instruction)  # type: ignore[arg-type]
            elif kind is Requeue:
                _record(future, AwaitingRetry(instruction.reason), late=False)  # type: ignore[union-attr]
            elif kind is Revoke:
                self._revoke(future)
            else:
                assert kind is Mark
                _record(future, Crashed(message=instruction.reason))  # type: ignore[union-attr]

    def _dispatch(self, future: TaskFuture[Any]) -> None:
        if self._chains and future.slot is None and future.payload.task.cache is not None and self._answered_here(future):
            return
        if future.task_run.tags:
            if future.slot is slots.WITHDRAWN:
                return  # granted after the flow cancelled it: it never starts
            if future.slot is None and self._wait_for_slots(future):
                return  # handed over when the slots are granted
        upstream = future.upstream
        call: TaskCall = _tuple_new(  # a NamedTuple, built without its Python-level __new__
            TaskCall,
            (
                future.run_id,
                self._entrypoint,
                future.payload,
                tuple([self._upstream_for_runner(u) for u in upstream]) if upstream else (),
                future.options,
            ),
        )
        try:
            runner_future = self.runner.submit(call)
        except BaseException as exc:  # the run cannot start (it does not pickle, say)
            self._release_slots(future)
            self._lost(future, exc)
            return
        future.runner_future = runner_future
        if runner_future.done():  # an inline runner, or a quick task: no callback to arm
            self._attempt_done(future, runner_future)
        else:
            runner_future.add_done_callback(partial(self._attempt_done, future))

    def _answered_here(self, future: TaskFuture[Any]) -> bool:
        """A cluster runner's cached run whose key is known here: a hit ends it in the flow's
        process, without a round trip through the cluster (`answer_from_cache_here`)."""
        upstream = future.upstream or ()
        outcomes = []
        for u in upstream:
            if not u.done():
                return False
            outcome = getattr(u, "outcome", None)
            outcomes.append(outcome if outcome is not None else outcome_of(u.state))
        try:
            outcome = answer_from_cache_here(future.payload, outcomes)
        except Exception:  # the cache could not answer here: the worker asks it again
            return False
        if outcome is None:
            return False
        self._attempt_done(future, FinishedFuture(future.run_id, outcome))
        return True

    def _wait_for_slots(self, future: TaskFuture[Any]) -> bool:
        """Ask for a slot of each limited tag of a run about to be handed over, without
        blocking; True if it must wait for them (it is then handed over by the grant)."""
        payload = future.payload
        upstream = future.upstream or ()
        if not all(upstream[i].done() and upstream[i].state.is_completed() for i in payload.required):
            return False  # its engine will end it NotReady: it needs no slot for that
        limits = limited_tags(payload.services, future.task_run.tags)
        if not limits:
            return False
        _record(future, slots.awaiting(limits), late=False)

        def granted(lease: Any) -> None:  # on the slot client's stream thread
            if future.slot is slots.WITHDRAWN:
                slots.in_background(lease.release, role="releases")
                return
            future.slot = lease
            if self._runs_inline:  # it would run the task on the stream thread: hand it on
                slots.hand_over(self._dispatch, future)
            else:  # a runner's submit only queues the call: each thread hop costs a GIL wait
                self._dispatch(future)

        def refused(exc: BaseException) -> None:
            if future.slot is slots.WITHDRAWN:
                return
            future.slot = None
            future.outcome = outcome_of(Failed(exc, f"{type(exc).__name__}: {exc}"))
            self._feed(AttemptLost(future, StateType.FAILED, f"{type(exc).__name__}: {exc}"))

        client = slots.slot_client(payload.services.target)
        request = future.slot = slots.SlotRequest()
        slots.in_background(request.send, client, limits, slots.holder_for(future.task_run), granted, refused)
        return True

    @staticmethod
    def _release_slots(future: TaskFuture[Any], *, withdraw: bool = False, now: bool = False) -> None:
        """The attempt ended (or will never start): its slots go back at once, whatever the
        outcome (sent in the background: this may be a worker's thread); a retry asks again
        when it is dispatched. `withdraw`: the run will not start at all, and a grant that
        arrives late is given back."""
        slot, future.slot = future.slot, (slots.WITHDRAWN if withdraw else None)
        if slot is None or slot is slots.WITHDRAWN:
            return
        if isinstance(slot, slots.SlotRequest):
            slots.in_background(slot.cancel, role="releases")
        elif now:  # at an attempt's end, on the thread that ran it: the next waiter starts sooner
            slot.release()
        else:
            slots.in_background(slot.release, role="releases")

    def _upstream_for_runner(self, upstream: RunFuture[Any]) -> Any:
        """What the runner gets for an upstream: its own future when it ran the upstream (so a
        cluster keeps the data on its workers), else the outcome, which is here."""
        if type(upstream) is TaskFuture:
            runner_future = upstream.runner_future
            if runner_future is not None and upstream.scheduler is self:
                return runner_future
            if upstream.outcome is not None:
                return upstream.outcome
        return outcome_of(upstream.state)

    def _finish(self, future: TaskFuture[Any], outcome: RunOutcome) -> None:
        future.outcome = outcome
        future.payload = future.upstream = None
        if not self._chains:
            # A downstream is given the outcome, which is here; a cluster's runner future
            # stays, since it keeps the value on the workers. Dropped, the pool's future
            # and its lock are not kept (and scanned by every collection) until the flow ends.
            future.runner_future = None
        future._set_final(outcome.state)
        if self._someone_waits and self._all_finished():
            self._notify_all_done()

    def _start_timer(self, instruction: StartTimer) -> None:
        event = RetryDue(instruction.run_id)
        if instruction.delay <= 0:
            self._feed(event)
            return
        timer = threading.Timer(instruction.delay, self._feed, (event,))
        timer.daemon = True
        timer.start()

    def _revoke(self, future: TaskFuture[Any]) -> None:
        if future.runner_future is None and future.slot is not None:  # waiting for a slot
            self._release_slots(future, withdraw=True)
            future.outcome = None
            self._feed(AttemptLost(future, StateType.CANCELLED, "cancelled while waiting for a concurrency slot"))
            return
        runner_future = future.runner_future
        if runner_future is None or runner_future.cancel():
            return  # a cancelled call's future completes with CancelledError: AttemptLost
        self._feed(Revoked(future, running=not runner_future.done()))

    def _end(self, instruction: End) -> None:
        future: TaskFuture[Any] = instruction.run_id  # type: ignore[assignment]
        lost = future.outcome.state if future.outcome is not None else None
        data = lost.data if lost is not None and lost.type is instruction.type else None
        if instruction.type is StateType.CRASHED:
            state = Crashed(data, instruction.reason)
        elif instruction.type is StateType.FAILED:
            state = Failed(data, instruction.reason)
        else:
            state = Cancelled(message=instruction.reason)
        # After an attempt that died on its worker the flow's record holds what that worker was
        # sent plus the attempt's start (`_count_lost_attempt`): the next index is the flow's.
        in_step = lost is not None and isinstance(lost.data, WorkerLost)
        self._finish(future, outcome_of(_record(future, state, late=not in_step)))

    # -- waiting for the end -----------------------------------------------------------------

    def _untrack(self, future: RunFuture[Any]) -> None:
        self._tracked.pop(future.run_id, None)
        if self._someone_waits and self._all_finished():
            self._notify_all_done()

    def _all_finished(self) -> bool:
        return not self._lifecycle.held() and not self._tracked

    def _notify_all_done(self) -> None:
        with self._all_done:
            self._all_done.notify_all()

    def wait_all(self, timeout: float | None = None) -> bool:
        """Block until every run submitted here has finished; False if `timeout` passed."""
        with self._all_done:
            self._someone_waits = True
            try:
                return self._all_done.wait_for(self._all_finished, timeout)
            finally:
                self._someone_waits = False


_FINAL_NAMES = {StateType.CRASHED: "Crashed", StateType.FAILED: "Failed"}


def _without_data(history: list[State]) -> tuple[State, ...]:
    """A run's states, the last one's data dropped: the copy must not keep a value alive."""
    last = history[-1]
    if last.data is None:
        return tuple(history)
    return (*history[:-1], last.with_data(None))


def _record(future: TaskFuture[Any], state: State, *, late: bool = True) -> State:
    """Put a state the engine never got to set on the flow's record of the run, if still
    allowed, and report it: by default as a state set after the hand-over (`RunReporter.late`,
    whose indexes no worker uses), else at the record's own next index."""
    run = future.task_run
    reporter = future.payload.services.reporter()
    report = None if reporter is None else reporter.late if late else reporter
    try:
        return set_state(run, state, report)
    except InvalidTransition:  # the run had already ended; its own final state stands
        return run.state or state


def _count_lost_attempt(future: TaskFuture[Any]) -> None:
    """Count an attempt that died on its worker on the flow's record, as the engine would have:
    `run_count` (so the next attempt is "Retrying" and retries are counted), `lost_attempts`,
    and the attempt's start, Running or Retrying, reported at the index its worker used for it.

    So the history a reader sees is a retry's (Running, AwaitingRetry, Retrying, ...), and
    the states the flow records next take the indexes after the dead attempt's two (its start
    and its end), which the next worker re-sends as part of the history: where the dead worker
    got to record the same index first, the server keeps one copy (ids are per index), and a
    re-sent Running never lands after the AwaitingRetry that followed it."""
    run = future.task_run
    run.run_count += 1
    run.lost_attempts += 1
    if run.start_time is None:
        run.start_time = time.time()
    reporter = future.payload.services.reporter()
    try:
        set_state(run, Running() if run.run_count == 1 else Retrying(), reporter)
    except InvalidTransition:  # ended from here meanwhile (an interrupt marked it CRASHED)
        pass
