"""Futures for task and flow runs, and the helpers `wait` and `as_completed`.

A `RunFuture` completes exactly once, with the run's final `State`. Until then `state` shows the
run's latest known state. Waiting is a pre-acquired lock released on completion: one allocation
per future and no condition variable, because futures are made on the hot path of every task.
A thread that blocks on a future from inside a pool worker tells its pool (`blocking_wait`) so
the pool can lend a thread instead of starving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar
from uuid import UUID

from ..runners.base import blocking_wait, call_done_callback
from .states import Detached, Pending, State, StateType, fetch_detached
from .tracebacks import fold_headwater_frames

_COMPLETED = StateType.COMPLETED

if TYPE_CHECKING:
    from .runs import FlowRun, TaskRun

R = TypeVar("R")
F = TypeVar("F", bound="RunFuture[Any]")

# Guards callback lists against the completing thread; contention is rare and brief.
_callbacks_lock = threading.Lock()


class RunFuture(Generic[R]):
    """The completion of one run. Subclasses say which kind of run."""

    __slots__ = ("_waiter", "_final", "_callbacks", "__weakref__")

    def __init__(self) -> None:
        self._waiter: threading.Lock | None = threading.Lock()
        self._waiter.acquire()
        self._final: State | None = None
        self._callbacks: list[Callable[[Any], object]] | None = None

    @property
    def run_id(self) -> UUID:
        raise NotImplementedError

    def _current_state(self) -> State:
        raise NotImplementedError

    @property
    def state(self) -> State:
        """The final state once done; until then, the latest state known in this process."""
        return self._final or self._current_state()

    def done(self) -> bool:
        return self._final is not None

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run finishes or `timeout` seconds pass (check `done()` after)."""
        waiter = self._waiter  # read before `_final`: it is dropped only after that is set
        if self._final is not None or waiter is None:
            return
        with blocking_wait():
            if waiter.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
                waiter.release()

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The run's value. A failed run raises its exception unless `raise_on_failure=False`,
        in which case the exception is returned. Raises `TimeoutError` if not done in time."""
        self.wait(timeout)
        final = self._final
        if final is None:
            raise TimeoutError(f"run {self.run_id} did not finish within {timeout} seconds")
        try:
            return final.result(raise_on_failure=raise_on_failure)  # type: ignore[no-any-return]
        except BaseException as exc:
            fold_headwater_frames(exc)  # the caller's traceback shows its own frames
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self.wait(timeout)
        final = self._final
        if final is None:
            raise TimeoutError(f"run {self.run_id} did not finish within {timeout} seconds")
        return None if final.is_completed() else final.result(raise_on_failure=False)

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """Call `fn(self)` once the run finishes (at once, here, if it already has). What `fn`
        raises is logged, never raised, as in `concurrent.futures`."""
        with _callbacks_lock:
            if self._final is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        call_done_callback(fn, self)

    def _set_final(self, state: State) -> None:
        with _callbacks_lock:
            if self._final is not None:
                return  # a run finishes once; a late second report is ignored
            self._final = state
            callbacks, self._callbacks = self._callbacks, None
            waiter = self._waiter
        assert waiter is not None  # dropped only below, once `_final` is set
        waiter.release()
        # Not kept: a finished future lives as long as its flow's caller keeps it, and every
        # collection scans each object still alive (a waiter that read it first still holds it).
        self._waiter = None
        if callbacks:
            for fn in callbacks:  # the scheduler's own callbacks share this list: isolate each
                call_done_callback(fn, self)


class TaskFuture(RunFuture[R]):
    """A task run submitted with `.submit()` or `.map()`."""

    __slots__ = (
        "task_run", "runner_future", "outcome", "scheduler", "payload", "upstream", "options", "eager",
        "slot",
    )  # fmt: skip

    def __init__(self, task_run: TaskRun) -> None:
        super().__init__()
        self.task_run = task_run
        self.runner_future: Any = None  # set when the run is handed to its runner
        self.outcome: Any = None  # the latest attempt's RunOutcome
        self.scheduler: Any = None  # the flow run's scheduler that dispatches it
        # The call's parts, kept by the scheduler until the run is finished (a retry sends
        # them again), then dropped so the arguments do not live as long as the future.
        self.payload: Any = None
        self.upstream: Any = None
        self.options: Any = None  # the runner's per-call settings, captured at submit
        self.eager = False  # handed over before its upstreams finished (`starts_after_upstreams`)
        # for a run tagged with a concurrency limit: its request for slots while it waits
        # (a Ticket), then its Lease while the attempt runs (`slots.py`)
        self.slot: Any = None

    @property
    def run_id(self) -> UUID:
        return self.task_run.id

    @property
    def task_run_id(self) -> UUID:
        return self.task_run.id

    def _current_state(self) -> State:
        return self.task_run.state or Pending()

    def __repr__(self) -> str:
        return f"TaskFuture({self.task_run.name!r}, state={self.state})"


class FlowFuture(RunFuture[R]):
    """A subflow run started with `flow.submit()`."""

    __slots__ = ("flow_run",)

    def __init__(self, flow_run: FlowRun) -> None:
        super().__init__()
        self.flow_run = flow_run

    @property
    def run_id(self) -> UUID:
        return self.flow_run.id

    @property
    def flow_run_id(self) -> UUID:
        return self.flow_run.id

    def _current_state(self) -> State:
        return self.flow_run.state or Pending()

    def __repr__(self) -> str:
        return f"FlowFuture({self.flow_run.name!r}, state={self.state})"


class FutureList(list[TaskFuture[R]], Generic[R]):
    """What `.map()` returns: a list of futures that can also be waited on as a whole."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Every run's value, in order. Values left where the runs ran are brought here in
        one request per runner where it can (a Dask gather, one `ray.get`), not one each."""
        try:
            return self._results(timeout, raise_on_failure)
        except BaseException as exc:
            fold_headwater_frames(exc)
            raise

    def _results(self, timeout: float | None, raise_on_failure: bool) -> list[R]:
        deadline = None if timeout is None else time.monotonic() + timeout
        wait(self, timeout)
        finals = [f._final for f in self]
        fetched = fetch_detached(finals, _remaining(deadline))
        # One pass, a completed run's value read in place: `f.result()` per run cost 2.4 µs,
        # which a 100,000-run map paid after its last run ended (`recorded-flush`).
        values: list[R] = []
        append = values.append
        for f, final in zip(self, finals):
            if final is not None and final.type is _COMPLETED:
                data = final.data
                if type(data) is not Detached:
                    append(data)
                    continue
                if id(data.handle) in fetched:
                    append(fetched[id(data.handle)])
                    continue
            append(f.result(timeout=_remaining(deadline), raise_on_failure=raise_on_failure))
        return values


class DoneAndNotDone(NamedTuple):
    done: set[RunFuture[Any]]
    not_done: set[RunFuture[Any]]


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def wait(futures: Iterable[RunFuture[Any]], timeout: float | None = None) -> DoneAndNotDone:
    """Wait for every future (or until `timeout`); say which finished and which did not."""
    futures = list(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    for future in futures:
        future.wait(_remaining(deadline))
        if deadline is not None and time.monotonic() >= deadline:
            break
    done = {f for f in futures if f.done()}
    return DoneAndNotDone(done, {f for f in futures if not f.done()})


def as_completed(futures: Iterable[F], timeout: float | None = None) -> Iterator[F]:
    """Yield futures as they finish; raise `TimeoutError` if some are unfinished in time."""
    pending = set(futures)
    finished: SimpleQueue[F] = SimpleQueue()
    for future in pending:
        future.add_done_callback(finished.put)
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        try:
            with blocking_wait():
                future = finished.get(timeout=_remaining(deadline))
        except Empty:
            raise TimeoutError(
                f"{len(pending)} of the futures did not finish within {timeout} seconds"
            ) from None
        pending.discard(future)
        yield future
