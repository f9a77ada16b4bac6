"""`ConcurrentTaskRunner`: task runs on a pool of threads in this process.

The pool is a small relative of `concurrent.futures.ThreadPoolExecutor` with one addition: a
worker that blocks on another task's future (a task calling `other.map(...).result()`) lends
its place, so the pool starts a replacement while the waiter is blocked. Without this, a pool
whose every worker waits on work queued behind them deadlocks; with it, the number of workers
*running* user code never exceeds `max_workers`, and extra threads exit once the waiters return.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from typing import Any

from ..errors import BrokenRunner
from .base import (
    RunnerFuture,
    TaskCall,
    TaskRunner,
    call_done_callback,
    resolve_upstream,
    set_blocking_hook,
)

_PENDING, _RUNNING, _FINISHED, _CANCELLED = range(4)
_new_lock = threading.Lock


class PoolFuture:
    """A runner future for a task run queued on the pool: the stdlib `Future` surface.

    No thread ever blocks on another here. The flow's thread adds a callback to a future that
    a worker may be starting or finishing that very moment; with a lock between them, a
    worker holding it that lost the GIL made the flow's thread wait for the lock and then
    for the GIL back, a convoy on the path every submitted run takes. Instead:

    * whoever moves the run out of PENDING (a worker starting it, or `cancel`) is whoever
      takes the one-shot `_claim` lock without blocking; it is never released;
    * only that thread finishes the future: it sets the outcome, then the state, then pops
      the callbacks one by one;
    * `add_done_callback` appends, then looks at the state again: if the future finished
      meanwhile, whichever of the two removes the callback from the deque first calls it.

    Each step is one operation under the GIL, so every callback runs exactly once.
    """

    __slots__ = ("run_id", "_state", "_value", "_error", "_callbacks", "_claim")

    def __init__(self, run_id: Any) -> None:
        self.run_id = run_id
        self._claim = _new_lock()
        self._state = _PENDING
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks: deque[Callable[[Any], object]] = deque()

    def done(self) -> bool:
        return self._state >= _FINISHED

    def running(self) -> bool:
        return self._state == _RUNNING

    def cancel(self) -> bool:
        """Cancel if not started yet; True if it is (now) cancelled. A worker's `start` racing
        this one loses the claim and skips the run, so a run reported cancelled never runs."""
        if not self._claim.acquire(False):
            return self._state == _CANCELLED
        self._error = CancelledError(f"task run {self.run_id} was cancelled")
        self._state = _CANCELLED
        self._notify()
        return True

    def start(self) -> bool:
        if not self._claim.acquire(False):
            return False  # cancelled while queued
        self._state = _RUNNING
        return True

    def _finish(self, value: Any, error: BaseException | None) -> None:
        """By the worker that started the run, once."""
        self._value, self._error = value, error
        self._state = _FINISHED
        self._notify()

    def _notify(self) -> None:
        callbacks = self._callbacks
        while True:
            try:
                fn = callbacks.popleft()
            except IndexError:
                return
            call_done_callback(fn, self)

    def result(self, timeout: float | None = None) -> Any:
        self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return self._error

    def _wait(self, timeout: float | None) -> None:
        if self._state >= _FINISHED:
            return
        finished = threading.Event()
        self.add_done_callback(lambda _: finished.set())
        if not finished.wait(timeout):
            raise TimeoutError(f"task run {self.run_id} did not finish within {timeout} seconds")

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        if self._state < _FINISHED:
            callbacks = self._callbacks
            callbacks.append(fn)
            if self._state < _FINISHED:
                return  # the finishing thread will pop it
            try:
                callbacks.remove(fn)  # it finished meanwhile: run fn here unless that thread took it
            except ValueError:
                return
        call_done_callback(fn, self)

    def __repr__(self) -> str:
        return f"<PoolFuture run_id={self.run_id}>"


_WorkItem = tuple[PoolFuture, TaskCall, contextvars.Context]


def default_max_workers() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


def _run_item(future: PoolFuture, call: TaskCall, context: contextvars.Context) -> None:
    if not future.start():
        return  # cancelled while queued
    try:
        upstream = resolve_upstream(call.upstream, PoolFuture) if call.upstream else ()
        result = context.run(call.entrypoint, call.payload, upstream)
    except BaseException as exc:  # handed to the future, never dropped
        future._finish(None, exc)
    else:
        future._finish(result, None)


class _LendingPool:
    """Worker threads pulling from one queue; see the module docstring for lending."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max_workers
        self._name = name
        self._queue: queue.SimpleQueue[_WorkItem | None] = queue.SimpleQueue()
        # A token per idle worker: `deque.append` and `.pop` are atomic, where a
        # `threading.Semaphore` is Python code around a Condition (~1 µs a task each way).
        self._idle: deque[None] = deque()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._blocked = 0
        self._spawned = 0
        self.closed = False

    def put(self, item: _WorkItem) -> None:
        self._queue.put(item)
        try:
            self._idle.pop()
            return  # an idle worker will take it
        except IndexError:
            pass
        with self._lock:
            if len(self._threads) - self._blocked < self._max:
                self._spawn_locked()

    def _spawn_locked(self) -> None:
        self._spawned += 1
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-{self._spawned}", daemon=True
        )
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        set_blocking_hook(self._lend_while_blocked)
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                self._queue.put(None)  # pass the stop signal on to the next worker
                return
            _run_item(*item)
            del item  # an idle worker must not keep its last result alive
            if self._surplus_thread_exits():
                return
            self._idle.append(None)

    def _surplus_thread_exits(self) -> bool:
        if len(self._threads) - self._blocked <= self._max:
            return False  # the common case, decided without the lock; rechecked under it below
        with self._lock:
            if len(self._threads) - self._blocked > self._max:
                self._threads.discard(threading.current_thread())
                return True
        return False

    @contextmanager
    def _lend_while_blocked(self) -> Iterator[None]:
        with self._lock:
            self._blocked += 1
            if not self._queue.empty() and len(self._threads) - self._blocked < self._max:
                self._spawn_locked()
        try:
            yield
        finally:
            with self._lock:
                self._blocked -= 1

    def close(self, wait: bool, cancel_futures: bool) -> None:
        self.closed = True
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        self._queue.put(None)
        if wait:
            current = threading.current_thread()
            for thread in list(self._threads):
                if thread is not current:
                    thread.join()


class ConcurrentTaskRunner(TaskRunner):
    """Runs task runs on threads of this process; `max_workers` bounds those running at once."""

    name = "concurrent"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or default_max_workers()
        self._pool: _LendingPool | None = None

    def start(self) -> None:
        if self._pool is None or self._pool.closed:
            self._pool = _LendingPool(self.max_workers, name="headwater-worker")

    def submit(self, call: TaskCall) -> RunnerFuture:
        pool = self._pool
        if pool is None or pool.closed:
            raise BrokenRunner(
                "ConcurrentTaskRunner is not running: use it inside a flow or a `with` block"
            )
        future = PoolFuture(call.run_id)
        pool.put((future, call, contextvars.copy_context()))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._pool is not None:
            self._pool.close(wait=wait, cancel_futures=cancel_futures)

    def duplicate(self) -> ConcurrentTaskRunner:
        return ConcurrentTaskRunner(self.max_workers)

    def __repr__(self) -> str:
        return f"ConcurrentTaskRunner(max_workers={self.max_workers})"
