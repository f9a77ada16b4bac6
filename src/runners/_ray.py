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
  at once with a `ShippingError` naming the argument: the run is FAILED), then handed to Ray
  by the runner's submit thread (`_Submissions`), so a large `.map()` does not hold the flow;
- task states: recorded by the engine on the worker, into the flow's state service (the
  address travels in the call); the flow's end confirms they arrived;
- return values and exceptions: in the object store, until fetched or released.

Failures: Ray never re-runs a call by itself (`max_retries=0`, `retry_exceptions=False`), and
so never reconstructs a lost value by running its task again either: each attempt runs once.
What Ray raises becomes headwater's, Ray's error kept as the `__cause__`:

- a worker that died under an attempt (`WorkerCrashedError`, `NodeDiedError`, Ray's memory
  monitor's `OutOfMemoryError`): `WorkerLost`; the flow retries the attempt within the task's
  budget (`retries`, or `crash_retries`) on a live worker;
- a finished run's value lost with its node (`ObjectLostError` and its kin), when a downstream
  run or `result()` needs it: `UpstreamLost`, naming the lost run; it is not run again;
- `RayTaskError`: unwrapped to the error it carries, which is mapped as above;
- a value that does not pickle: its run completed on its worker, and the value stays there
  (`Outgoing`): `result()` raises `ShippingError` naming the run and the type, and a downstream
  run that needs it ends FAILED saying the same.

A head that goes away: a thread probes its GCS port every second, and after 5 s of silence
every unfinished run ends CRASHED with a `BrokenRunner` naming the head, new calls are
refused, and `lost()` makes the flow end CRASHED too (`_headwatch.py`), well before Ray would
end the process (60 s).

Before the flow hands it anything, `preflight(check)` runs the flow's check once on every
alive node (a zero-CPU task pinned to it; `_preflight.py`).

Per-call Ray options (resources, `runtime_env`) come from the task's
`@task(runner_options={...})` and from `remote_options(...)` around `.submit()`, which wins.

Through Ray Client (`address="ray://..."`) a finished run's callbacks run on one thread of our
own, not on the client's data thread that finished it: a callback dispatches the run's
downstreams, and `ObjectRef.future()` on a new call waits for that very thread to register the
call, so it deadlocked the flow at its first dependent task.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import CancelledError, Executor, Future, InvalidStateError, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

import cloudpickle
import ray

from ..errors import BrokenRunner, CancelInterrupt, ShippingError, UpstreamLost, WorkerLost
from ._headwatch import RayHeadWatch
from ._preflight import check_ray_nodes
from ._shipping import Outgoing, fetched_value, pickled_call
from .base import RunnerFuture, TaskCall, TaskRunner, WorkerCheck, WorkerInterrupt, call_done_callback

#: What Ray raises when the worker (or node) running an attempt died under it.
_DEAD_WORKER: tuple[type[BaseException], ...] = (
    ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError,
)

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

    The options are read by `.submit()` (or `.map()`) inside the block and stay with each run
    however long it waits for its upstreams. They override the task's own
    `@task(runner_options={...})`, which apply wherever the task is submitted.
    """
    _check(options, "remote_options")
    token = _options.set({**_options.get(), **options})
    try:
        yield
    finally:
        _options.reset(token)


def _check(options: Mapping[str, Any], where: str) -> None:
    unknown = set(options) - OPTION_NAMES
    if unknown:
        raise TypeError(f"{where} got unknown Ray options {sorted(unknown)}; "
                        f"allowed: {sorted(OPTION_NAMES)}")


class RayData:
    """The data handle of a run that ran on Ray: the `ObjectRef` of its full outcome.

    Made empty on the worker (inside the outcome returned to the flow) and filled in by the
    flow's future, with the run's label for errors; holding it keeps the data alive in Ray's
    object store."""

    __slots__ = ("ref", "run")

    def __init__(self, ref: Any = None) -> None:
        self.ref = ref
        self.run = "the task run"

    def __getstate__(self) -> Any:
        return (self.ref,)  # never a false value: pickle would skip __setstate__ for one

    def __setstate__(self, state: Any) -> None:
        self.ref, self.run = state[0], "the task run"

    def fetch(self, timeout: float | None = None) -> Any:
        try:
            outcome = ray.get(self.ref, timeout=timeout)
        except ray.exceptions.ObjectLostError as exc:
            raise _upstream_lost(self.run, exc) from exc
        return fetched_value(outcome)

    @staticmethod
    def fetch_many(handles: list[RayData], timeout: float | None = None) -> list[Any]:
        """Several values in one `ray.get`."""
        return [fetched_value(outcome) for outcome in ray.get([h.ref for h in handles], timeout=timeout)]

    def __repr__(self) -> str:
        return f"RayData({self.ref!r})"


class _RayOutgoing(Outgoing):
    """`Outgoing` pickled with Ray's cloudpickle, which records the `ObjectRef`s inside."""

    __slots__ = ()
    dumps = staticmethod(ray.cloudpickle.dumps)


def _run_on_worker(blob: bytes, *upstream: Any) -> tuple[Any, Any]:
    """In a Ray task: run the call. Returns (the outcome without data, the full outcome);
    the first is `(handle, outcome.detach(handle))`, or `(None, value)` for a plain value."""
    entrypoint, payload = cloudpickle.loads(blob)
    with _ray_cancel_is_a_cancel():
        outcome = entrypoint(payload, upstream)
    if not hasattr(outcome, "detach"):
        return (None, outcome), outcome
    handle = RayData()
    return (handle, outcome.detach(handle)), _RayOutgoing(outcome, getattr(payload, "task_run", None))


@contextmanager
def _ray_cancel_is_a_cancel() -> Iterator[None]:
    """While the call runs, SIGINT raises `CancelInterrupt`. `ray.cancel(ref)` (force=False)
    stops a running task by simulating SIGINT in its worker's main thread, which would raise
    KeyboardInterrupt: the engine would end the run CRASHED as if someone pressed Ctrl-C. As
    a `CancelInterrupt` the engine ends it CANCELLED, as any cancel of its flow, and returns
    its outcome. A Ray task gets no other SIGINT while it runs (Ctrl-C at the driver does not
    reach workers). Off the main thread (a threaded actor) handlers cannot be set: unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def cancelled(signum: int, frame: object) -> None:
        raise CancelInterrupt("ray.cancel: its flow run was cancelled")

    before = signal.signal(signal.SIGINT, cancelled)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


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
    """A runner future for a call on Ray; waits on the small return only.

    Made when the call is queued. `_done` completes with that return once the runner's submit
    thread has handed the call to Ray (`_handed_over`) and Ray finished it, or with why the
    call could not be sent (`_refuse`) or the head went away (`_headwatch`)."""

    __slots__ = ("run_id", "meta_ref", "data_ref", "run", "_upstream", "_done", "_outcome", "_callbacks")

    def __init__(
        self, run_id: UUID, run: str = "", upstream: tuple[RayFuture, ...] = (), callbacks: Executor | None = None
    ) -> None:
        self.run_id = run_id
        self.meta_ref: Any = None
        self.data_ref: Any = None
        self.run = run or f"task run {run_id}"  # how errors name it
        self._upstream = upstream  # this runner's upstream calls, to name one whose value is lost
        self._done: Future[Any] = Future()
        self._outcome: Any = None
        self._callbacks = callbacks

    def _handed_over(self, meta_ref: Any, data_ref: Any) -> None:
        self.meta_ref, self.data_ref = meta_ref, data_ref
        if self._done.done():  # withdrawn while the submit thread was sending it
            ray.cancel(meta_ref, force=False)
            return
        callbacks = self._callbacks
        if callbacks is None:
            meta_ref.future().add_done_callback(self._settle)
        else:
            meta_ref.future().add_done_callback(lambda inner: callbacks.submit(self._settle, inner))

    def _settle(self, inner: Future[Any]) -> None:
        error = inner.exception()
        try:
            if error is None:
                self._done.set_result(inner.result())
            else:
                self._done.set_exception(error)
        except InvalidStateError:  # the head watch failed it first
            pass

    def _refuse(self, error: BaseException) -> None:
        try:
            self._done.set_exception(error)
        except InvalidStateError:  # the head watch failed it first
            pass

    def result(self, timeout: float | None = None) -> Any:
        if self._outcome is None:
            try:
                handle, outcome = self._done.result(timeout)
            except (TimeoutError, ray.exceptions.GetTimeoutError):
                raise
            except BaseException as exc:
                raise self._mapped(exc)  # the error Ray raised is its __cause__
            if handle is not None:
                handle.ref = self.data_ref
                handle.run = self.run
            self._outcome = outcome
            self._upstream = ()
        return self._outcome

    def _mapped(self, exc: BaseException) -> BaseException:
        """Ray's error as headwater's (see the module docstring), Ray's as the `__cause__`;
        the entrypoint's own (an interrupt inside the task) as it was raised."""
        if isinstance(exc, ray.exceptions.RayTaskError):  # the entrypoint raised, or Ray for it
            if not isinstance(exc.cause, BaseException):
                return exc
            exc = exc.cause
        mapped: BaseException
        if isinstance(exc, _DEAD_WORKER):
            mapped = WorkerLost(f"the Ray worker running it died ({type(exc).__name__}: {exc})")
        elif isinstance(exc, ray.exceptions.ObjectLostError):
            lost = getattr(exc, "object_ref_hex", None)
            run = next(
                (u.run for u in self._upstream if u.data_ref is not None and u.data_ref.hex() == lost),
                "an upstream run",
            )
            mapped = _upstream_lost(run, exc)
        else:
            return exc
        mapped.__cause__ = exc
        return mapped

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            self.result(timeout)
        except (TimeoutError, ray.exceptions.GetTimeoutError):
            raise
        except BaseException as exc:
            return exc
        return None

    def done(self) -> bool:
        return self._done.done()

    def running(self) -> bool:
        return not self._done.done()

    def cancel(self) -> bool:
        """Withdraw a call not handed to Ray yet: it is never sent. One handed over may be
        running (Ray cannot say), so False: `RayTaskRunner.interrupt` stops those."""
        if self.meta_ref is not None or self._done.done():
            return False
        self._refuse(CancelledError(f"{self.run} was cancelled before it was sent to Ray"))
        return True

    def _interrupt(self) -> bool:
        """`ray.cancel(force=False)`: a queued call never runs, a running one gets
        `CancelInterrupt` at its next bytecode (`_ray_cancel_is_a_cancel`); and complete now,
        so a call blocked in C there (which stops only when that returns) does not hold the
        flow. `force=True` would kill the worker process, which reads as `WorkerLost` and
        would be retried. False if it had finished or was never sent."""
        if self.meta_ref is None or self._done.done():
            return False
        ray.cancel(self.meta_ref, force=False)
        self._refuse(CancelledError(f"{self.run} was interrupted on its Ray worker (ray.cancel)"))
        return True

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        self._done.add_done_callback(lambda _done: call_done_callback(fn, self))


_Queued = tuple[RayFuture, bytes, tuple[Any, ...], Any]


class _Submissions:
    """Hands calls to Ray from a thread of its own, in the order they were submitted.

    `.remote()` costs the caller about half a millisecond under load: mapping 10,000 items
    held the flow's thread for 5.7 s. `submit` pickles the call (so one that does not pickle
    fails there) and queues it; this thread makes the Ray call, and an upstream queued earlier
    always has its `ObjectRef` by the time its dependents are sent."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="headwater-ray-submit", daemon=True)
        self._thread.start()

    def put(self, item: _Queued) -> None:
        self._queue.put(item)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30.0)

    def _loop(self) -> None:
        function = _remote_function()
        while (item := self._queue.get()) is not None:
            future, blob, upstream, options = item
            if future.done():
                continue  # withdrawn while queued, or failed by the head watch
            try:
                args = [_ref_of(u) for u in upstream]
                meta_ref, data_ref = (function.options(**options) if options else function).remote(blob, *args)
            except Exception as exc:
                error = exc if isinstance(exc, BrokenRunner) else ShippingError(
                    f"task run {future.run_id} cannot be sent to Ray: {type(exc).__name__}: {exc}"
                )  # fmt: skip
                error.__cause__ = exc
                future._refuse(error)
                continue
            future._handed_over(meta_ref, data_ref)


def _ref_of(upstream: Any) -> Any:
    """What goes to Ray for an upstream: the data ref of one of this runner's calls (which the
    submit thread handed over before), or an outcome already here."""
    if type(upstream) is not RayFuture:
        return upstream
    if upstream.data_ref is None:
        raise BrokenRunner(f"an upstream call ({upstream.run}) was never handed to Ray")
    return upstream.data_ref


def _label(call: TaskCall) -> str:
    run = getattr(call.payload, "task_run", None)  # the runtime's payload; a bare call has none
    return f"task run {run.name!r} ({call.run_id})" if run is not None else f"task run {call.run_id}"


def _upstream_lost(run: str, exc: BaseException) -> UpstreamLost:
    return UpstreamLost(
        f"the value of {run} was lost with the Ray node that held it ({type(exc).__name__}); a "
        "finished run is never run again (its side effects would repeat), so what needs it cannot run"
    )


class RayTaskRunner(TaskRunner):
    """Runs task runs on a Ray cluster: the one at `address` ("auto", "ray://host:10001", a
    head node's address), the one this process already joined, or else a local one it starts.

    `init_kwargs` go to `ray.init` (e.g. `num_cpus`, `runtime_env`). A runner shuts down only a
    Ray it started itself."""

    name = "ray"
    starts_after_upstreams = True

    def __init__(self, address: str | None = None, init_kwargs: Mapping[str, Any] | None = None) -> None:
        self.address = address
        self.init_kwargs = dict(init_kwargs or {})
        self._running = False
        self._started_ray = False
        self._watch: RayHeadWatch | None = None
        self._callbacks: Executor | None = None
        self._submissions: _Submissions | None = None
        self._unfinished: set[RayFuture] = set()  # what `interrupt` stops

    def start(self) -> None:
        if self._running:
            return
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_kwargs)
            self._started_ray = True
        if not ray.util.client.ray.is_connected():  # type: ignore[no-untyped-call]  # Ray Client: see _headwatch
            self._watch = RayHeadWatch(ray.get_runtime_context().gcs_address)
        self._callbacks = _callbacks_off_ray_client()
        self._submissions = _Submissions()
        self._running = True

    def preflight(self, check: WorkerCheck) -> None:
        """Run `check` once on every alive node (a zero-CPU task pinned to it, one round
        trip); raise `PreflightFailed` naming each unfit node by its id and address."""
        check_ray_nodes(check)

    def interrupt(self, stop: WorkerInterrupt) -> list[str]:
        """Stop every unfinished call of this runner with `ray.cancel` (a runner serves one
        flow run: `duplicate()`); `stop` is not needed, as Ray reaches a running task through
        its ref, and no other way. Their names."""
        return [f"{future.run} (on Ray, ray.cancel)" for future in list(self._unfinished) if future._interrupt()]

    def lost(self) -> BrokenRunner | None:
        """The loss of the Ray head since this runner started (waits out the grace of a head
        that is silent right now, see `_headwatch`)."""
        return self._watch.verdict() if self._watch is not None else None

    def submit(self, call: TaskCall) -> RunnerFuture:
        if not self._running:
            raise BrokenRunner("RayTaskRunner is not running: use it inside a flow or a `with` block")
        watch = self._watch
        if watch is not None and watch.error is not None:
            raise watch.refuse()
        blob = pickled_call((call.entrypoint, call.payload), call.run_id, "Ray")
        own = tuple([u for u in call.upstream if type(u) is RayFuture]) if call.upstream else ()
        future = RayFuture(call.run_id, _label(call), own, self._callbacks)
        if watch is not None:
            watch.track(future._done)
        unfinished = self._unfinished
        unfinished.add(future)
        future._done.add_done_callback(lambda _done: unfinished.discard(future))
        assert self._submissions is not None
        self._submissions.put((future, blob, call.upstream, call.options))
        return future

    def submission_options(self, task_options: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The task's `runner_options` under those of the `remote_options` blocks around the
        submit; None when neither sets any."""
        around = _options.get()
        if not task_options:
            return around or None
        _check(task_options, "runner_options of the task")
        return {**task_options, **around}

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._running = False
        if self._submissions is not None:
            self._submissions.close()
            self._submissions = None
        if self._watch is not None:
            self._watch.stop()
        if self._started_ray:
            self._started_ray = False
            ray.shutdown()

    def duplicate(self) -> RayTaskRunner:
        return RayTaskRunner(self.address, self.init_kwargs)

    def __repr__(self) -> str:
        return f"RayTaskRunner(address={self.address!r})"
