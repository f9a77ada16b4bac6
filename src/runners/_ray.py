"""`RayTaskRunner`: task runs as Ray tasks, their data left in Ray's object store.

Each call runs the task engine in a Ray task (never the bare function, so retries, caching and
recording behave as on any runner). The Ray task has two returns: a small one, the run's
outcome without its data, which is all the flow's process reads when the run finishes; and
the full outcome, which stays in the object store. A downstream run on the same runner gets
that second `ObjectRef` as a top-level argument, which Ray resolves on the worker that runs
it: data moves worker to worker, never through the flow. The flow's process reads a value
only when asked (`future.result()`, `state.result()`): the outcome it holds carries
`Detached(RayData(ref))`, and the handle keeps the ref, so Ray keeps the data while it lives.

Where each thing lives:

- the function and its arguments: cloudpickled in `submit` (a call that does not pickle fails
  at once with a `ShippingError` naming the run: the run is CRASHED), sent with the Ray task;
- task states: recorded by the engine on the worker, into the flow's state service (the
  address travels in the call), made durable before the Ray task returns;
- return values and exceptions: in the object store, until fetched or released.

Failures: Ray never re-runs a call by itself (`max_retries=0`, `retry_exceptions=False`):
retries are the task's own `retries`, run by the engine. A worker that dies mid-task makes
the run CRASHED with Ray's error (`WorkerCrashedError`) in its message, and the task ran
once.

Per-call Ray options (resources, `runtime_env`) come from `remote_options(...)` around
`.submit()`; see its docstring for when they are read.

Through Ray Client (`address="ray://..."`) a finished run's callbacks run on one thread of our
own, not on the client's data thread that finished it: a callback dispatches the run's
downstreams, and `ObjectRef.future()` on a new call waits for that very thread to register the
call, so it deadlocked the flow at its first dependent task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

import cloudpickle
import ray

from ..errors import BrokenRunner, ShippingError
from ._shipping import pickled_call
from .base import RunnerFuture, TaskCall, TaskRunner, call_done_callback

#: The Ray task options `remote_options` accepts; the rest (retries, returns) are the runner's.
OPTION_NAMES = frozenset(
    {"num_cpus", "num_gpus", "memory", "resources", "runtime_env", "accelerator_type",
     "scheduling_strategy", "name"}
)  # fmt: skip
_options: ContextVar[Mapping[str, Any]] = ContextVar("headwater_ray_options", default={})


@contextmanager
def remote_options(**options: Any) -> Iterator[None]:
    """Ray options (`num_cpus`, `num_gpus`, `memory`, `resources`, `runtime_env`, ...) for the
    task runs submitted inside the block; nested blocks add to and override outer ones.

        with remote_options(num_cpus=2, memory=2 * 1024**3):
            big = train.submit(data)

    The options are read when the run is handed to Ray. A run submitted once its upstreams are
    done is handed over during `.submit()`, so the block applies. A run whose upstreams are
    still running is handed over later, by the thread that finishes the last one, outside the
    block: it runs with default options. Where options matter for such a run, wait for its
    upstreams first (`wait([...])`) or put the options on every run of the chain's block.
    """
    unknown = set(options) - OPTION_NAMES
    if unknown:
        raise TypeError(f"remote_options got unknown Ray options {sorted(unknown)}; "
                        f"allowed: {sorted(OPTION_NAMES)}")
    token = _options.set({**_options.get(), **options})
    try:
        yield
    finally:
        _options.reset(token)


class RayData:
    """The data handle of a run that ran on Ray: the `ObjectRef` of its full outcome.

    Made empty on the worker (inside the outcome returned to the flow) and filled in by the
    flow's future; holding it keeps the data alive in Ray's object store."""

    __slots__ = ("ref",)

    def __init__(self, ref: Any = None) -> None:
        self.ref = ref

    def fetch(self, timeout: float | None = None) -> Any:
        return ray.get(self.ref, timeout=timeout).state.data

    def __repr__(self) -> str:
        return f"RayData({self.ref!r})"


def _run_on_worker(blob: bytes, *upstream: Any) -> tuple[Any, Any]:
    """In a Ray task: run the call. Returns (the outcome without data, the full outcome);
    the first is `(handle, outcome.detach(handle))`, or `(None, value)` for a plain value."""
    entrypoint, payload = cloudpickle.loads(blob)
    outcome = entrypoint(payload, upstream)
    if not hasattr(outcome, "detach"):
        return (None, outcome), outcome
    handle = RayData()
    return (handle, outcome.detach(handle)), outcome


_remote: Any = None
_client_callbacks: Executor | None = None  # the thread for Ray Client callbacks


def _callbacks_off_ray_client() -> Executor | None:
    """Where callbacks run when connected through Ray Client (see the module docstring); None
    otherwise: then Ray's own thread runs them, where submitting new calls is fine."""
    global _client_callbacks
    if not ray.util.client.ray.is_connected():  # type: ignore[no-untyped-call]
        return None
    if _client_callbacks is None:
        _client_callbacks = ThreadPoolExecutor(1, thread_name_prefix="headwater-ray-client")
    return _client_callbacks


def _remote_function() -> Any:
    global _remote
    if _remote is None:
        _remote = ray.remote(num_returns=2, max_retries=0, retry_exceptions=False)(_run_on_worker)
    return _remote


class RayFuture:
    """A runner future for a call running on Ray; waits on the small return only."""

    __slots__ = ("run_id", "meta_ref", "data_ref", "_inner", "_outcome", "_callbacks")

    def __init__(self, run_id: UUID, meta_ref: Any, data_ref: Any, callbacks: Executor | None = None) -> None:
        self.run_id = run_id
        self.meta_ref = meta_ref
        self.data_ref = data_ref
        self._inner = meta_ref.future()
        self._outcome: Any = None
        self._callbacks = callbacks

    def result(self, timeout: float | None = None) -> Any:
        if self._outcome is None:
            try:
                handle, outcome = self._inner.result(timeout)
            except ray.exceptions.RayTaskError as exc:  # the entrypoint raised: its error
                raise exc.cause if isinstance(exc.cause, BaseException) else exc
            if handle is not None:
                handle.ref = self.data_ref
            self._outcome = outcome
        return self._outcome

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            self.result(timeout)
        except TimeoutError:
            raise
        except BaseException as exc:
            return exc
        return None

    def done(self) -> bool:
        return bool(self._inner.done())

    def running(self) -> bool:
        return not self._inner.done()

    def cancel(self) -> bool:
        return False  # Ray cannot tell whether a task started; a submitted call runs

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        callbacks = self._callbacks
        if callbacks is None:
            self._inner.add_done_callback(lambda _inner: call_done_callback(fn, self))
        else:
            self._inner.add_done_callback(lambda _inner: callbacks.submit(call_done_callback, fn, self))


class RayTaskRunner(TaskRunner):
    """Runs task runs on a Ray cluster: the one at `address` ("auto", "ray://host:10001", a
    head node's address), the one this process already joined, or else a local one it starts.

    `init_kwargs` go to `ray.init` (e.g. `num_cpus`, `runtime_env`). A runner shuts down only a
    Ray it started itself."""

    name = "ray"

    def __init__(self, address: str | None = None, init_kwargs: Mapping[str, Any] | None = None) -> None:
        self.address = address
        self.init_kwargs = dict(init_kwargs or {})
        self._running = False
        self._started_ray = False
        self._callbacks: Executor | None = None

    def start(self) -> None:
        if self._running:
            return
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_kwargs)
            self._started_ray = True
        self._callbacks = _callbacks_off_ray_client()
        self._running = True

    def submit(self, call: TaskCall) -> RunnerFuture:
        if not self._running:
            raise BrokenRunner("RayTaskRunner is not running: use it inside a flow or a `with` block")
        blob = pickled_call((call.entrypoint, call.payload), call.run_id, "Ray")
        upstream = [u.data_ref if type(u) is RayFuture else u for u in call.upstream]
        options = _options.get()
        function = _remote_function()
        try:
            meta_ref, data_ref = (function.options(**options) if options else function).remote(blob, *upstream)
        except Exception as exc:
            raise ShippingError(f"task run {call.run_id} cannot be sent to Ray: {type(exc).__name__}: {exc}") from exc
        return RayFuture(call.run_id, meta_ref, data_ref, self._callbacks)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._running = False
        if self._started_ray:
            self._started_ray = False
            ray.shutdown()

    def duplicate(self) -> RayTaskRunner:
        return RayTaskRunner(self.address, self.init_kwargs)

    def __repr__(self) -> str:
        return f"RayTaskRunner(address={self.address!r})"
