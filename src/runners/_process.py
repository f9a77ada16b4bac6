"""`ProcessPoolTaskRunner`: task runs in a pool of worker processes on this machine.

For CPU-bound Python that threads would serialise on the GIL. Each call is pickled with
cloudpickle in `submit` (so tasks defined in `__main__` or a notebook travel by value, and an
argument that cannot be pickled ends that run FAILED before anything is sent, its
`ShippingError` naming the argument and its type). In the worker the engine runs as it would
anywhere: it records the run's states into the flow's state service itself (the address
travels in the call) and returns the outcome, pickled back. A process pool has no shared
store, so upstream outcomes travel through the flow's process and a value comes back with its
outcome; a value that does not pickle leaves the run COMPLETED with its data left behind
(`result()` raises `ShippingError` naming the run and the value's type, and a downstream run
that needs it ends FAILED saying the same).

Workers start with `spawn` by default: forking a process that holds gRPC channels and
recorder threads is unsafe. As with any spawn pool, a script that uses this runner must keep
its entry point under `if __name__ == "__main__":`, since each worker imports the main module.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any
from uuid import UUID

import cloudpickle

from ..errors import BrokenRunner
from ._shipping import pickled_call, without_value
from .base import RunnerFuture, TaskCall, TaskRunner, call_done_callback, resolve_upstream

_DECODED = object()  # marker: the future's bytes were decoded already


class ProcessFuture:
    """A runner future for a call running in a worker process; `result()` is its outcome."""

    __slots__ = ("run_id", "_inner", "_outcome")

    def __init__(self, run_id: UUID, inner: Future[bytes]) -> None:
        self.run_id = run_id
        self._inner = inner
        self._outcome: Any = _DECODED

    def result(self, timeout: float | None = None) -> Any:
        outcome = self._outcome
        if outcome is _DECODED:
            outcome = self._outcome = pickle.loads(self._inner.result(timeout))
        return outcome

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._inner.exception(timeout)

    def done(self) -> bool:
        return self._inner.done()

    def running(self) -> bool:
        return self._inner.running()

    def cancel(self) -> bool:
        return self._inner.cancel()

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        self._inner.add_done_callback(lambda _inner: call_done_callback(fn, self))


def _run_pickled(run_id: UUID, blob: bytes) -> bytes:
    """In the worker: run the call, pickle the outcome (without its value if that does not
    pickle: see `Unshippable`)."""
    entrypoint, payload, upstream = pickle.loads(blob)
    outcome = entrypoint(payload, upstream)
    try:
        return cloudpickle.dumps(outcome)  # type: ignore[no-any-return]
    except Exception as exc:
        detached = without_value(outcome, getattr(payload, "task_run", None), exc)
        return cloudpickle.dumps(detached)  # type: ignore[no-any-return]


def default_max_workers() -> int:
    return os.cpu_count() or 1


class ProcessPoolTaskRunner(TaskRunner):
    """Runs task runs in up to `max_workers` worker processes (default: one per core)."""

    name = "processes"

    def __init__(self, max_workers: int | None = None, *, start_method: str = "spawn") -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start_method {start_method!r} is not available here; "
                f"choose one of {multiprocessing.get_all_start_methods()}"
            )
        self.max_workers = max_workers or default_max_workers()
        self.start_method = start_method
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self._executor is None:
            context = multiprocessing.get_context(self.start_method)
            self._executor = ProcessPoolExecutor(self.max_workers, mp_context=context)

    def submit(self, call: TaskCall) -> RunnerFuture:
        executor = self._executor
        if executor is None:
            raise BrokenRunner(
                "ProcessPoolTaskRunner is not running: use it inside a flow or a `with` block"
            )
        upstream = resolve_upstream(call.upstream, ProcessFuture) if call.upstream else ()
        blob = pickled_call((call.entrypoint, call.payload, upstream), call.run_id, "a worker process")
        try:
            inner = executor.submit(_run_pickled, call.run_id, blob)
        except RuntimeError as exc:  # shut down, or a worker died and broke the pool
            raise BrokenRunner(f"ProcessPoolTaskRunner cannot take work: {exc}") from exc
        return ProcessFuture(call.run_id, inner)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def duplicate(self) -> ProcessPoolTaskRunner:
        return ProcessPoolTaskRunner(self.max_workers, start_method=self.start_method)

    def __repr__(self) -> str:
        return f"ProcessPoolTaskRunner(max_workers={self.max_workers})"
