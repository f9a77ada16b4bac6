"""`DaskTaskRunner`: task runs on a Dask cluster, their data left on its workers.

Each call becomes two Dask tasks. The first (`main`) runs the task engine on a worker and
keeps its whole `RunOutcome`, value included, in that worker's memory. The second (`meta`,
tiny) turns it into the same outcome with the value detached behind a `DaskData` handle; the
flow receives only that. A downstream call on this runner gets the upstream `main` futures, so
Dask hands the outcomes over worker to worker; the flow's process unpickles a value only when
someone asks for it (`State.result()` fetches through the handle). The runner future keeps
`main` alive, and so does the handle once the flow has the outcome, so Dask does not release
the data while the flow can still ask for it. Closing the runner's client releases it all:
fetch values inside the flow.

What goes wrong, and what it becomes:

- a call that does not pickle (its function or an argument): `submit` raises `ShippingError`
  naming the run and the argument with its type, before anything is sent; the run ends FAILED;
- the task's own exception: a FAILED state, as on every runner (the engine catches it);
- a worker lost mid-task: Dask reports `KilledWorker`, which becomes `WorkerLost` naming the
  worker (address and pid), Dask's error its `__cause__`; the flow retries the attempt within
  the task's budget (`retries`, or `crash_retries`) on a live worker, else the run ends
  CRASHED (FAILED when every attempt died). Each attempt runs at most once: calls go in with
  `retries=0`, a cluster this runner starts gets `distributed.scheduler.allowed-failures = 0`,
  and on a cluster passed in that lets Dask re-run a task whose worker died, the re-run is
  turned into that `WorkerLost` (`LostResultGuard`);
- a finished run whose worker died: Dask would compute its value again (re-running the task)
  for whoever still wants it. `LostResultGuard`, a scheduler plugin the runner installs, turns
  that recomputation into an `UpstreamLost` naming the run: the flow's `result()` raises it and
  a downstream run that needs the value ends CRASHED with it; the task is not run again;
- a value that does not pickle: it stays on its worker, where a downstream run on the same
  worker still gets it; anywhere else (another worker, the flow) it arrives as an
  `Unshippable` handle (`Outgoing`), so the downstream run ends FAILED and `result()` raises
  `ShippingError`, both naming the run and the type, instead of waiting forever.

`dask.annotate(...)` around `Task.submit` applies when the call is handed to Dask in the same
block (the runner reads nothing itself; `Client.submit` merges the annotations in effect, but
never `retries`). A call whose upstreams are still running is handed over later, from Dask's
callback thread, and gets whatever annotations are in effect then (Dask keeps them in its
process-wide config).
"""

from __future__ import annotations

import importlib
import itertools
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any
from uuid import UUID

import cloudpickle
import distributed
from dask import config as dask_config
from dask._task_spec import Task as DaskTask
from dask.base import annotate, get_annotations
from dask.sizeof import sizeof
from distributed.diagnostics.plugin import SchedulerPlugin

from ..errors import BrokenRunner, ShippingError, UpstreamLost, WorkerLost
from ._shipping import Outgoing, arrived, fetched_value, pickled_call
from .base import RunnerFuture, TaskCall, TaskRunner, call_done_callback

ALLOWED_FAILURES = "distributed.scheduler.allowed-failures"


class DaskData:
    """The handle of a value kept on a Dask worker: the key of the task holding its outcome.

    Made on the worker; the runner future binds the Dask future to it in the flow's process,
    which keeps the data alive and lets `fetch` bring it here."""

    __slots__ = ("key", "_future")

    def __init__(self, key: str) -> None:
        self.key = key
        self._future: Any = None  # a distributed.Future (untyped)

    def __getstate__(self) -> str:
        return self.key

    def __setstate__(self, key: str) -> None:
        self.key, self._future = key, None

    def fetch(self, timeout: float | None = None) -> Any:
        if self._future is None:
            raise ShippingError(f"the value in Dask task {self.key!r} is not reachable from here")
        try:
            outcome = self._future.result(timeout)
        except distributed.scheduler.KilledWorker as exc:  # a worker died recomputing it
            raise UpstreamLost(f"the value of {_run_label(self.key)} was lost: {_worker_lost(exc)}") from exc
        return fetched_value(outcome)

    def __repr__(self) -> str:
        return f"<on a Dask worker: {self.key}>"


def _run(blob: bytes, *remote: Any) -> Any:
    """On a worker: the engine, with the upstream outcomes Dask resolved put in their places.
    The outcome stays in the worker's memory as an `Outgoing`, which leaves without its value
    if that does not pickle (see `_shipping.py`)."""
    entrypoint, payload, upstream, slots = cloudpickle.loads(blob)
    for slot, outcome in zip(slots, remote):
        upstream[slot] = arrived(outcome)
    outcome = entrypoint(payload, tuple(upstream))
    # `hasattr`, not `isinstance(outcome, Outcome)`: a runtime Protocol check costs 3.6 us
    return Outgoing(outcome, getattr(payload, "task_run", None)) if hasattr(outcome, "detach") else outcome


def _without_data(handle: DaskData, outcome: Any) -> Any:
    outcome = arrived(outcome)
    return outcome.detach(handle) if hasattr(outcome, "detach") else outcome


def _sizeof_outgoing(outgoing: Outgoing) -> int:
    return int(sizeof(outgoing.outcome))  # Dask's memory accounting sees the value inside


sizeof.register(Outgoing)(_sizeof_outgoing)  # type: ignore[no-untyped-call]


def _lost_result(run: str, worker: str) -> None:
    """Runs on a worker in place of a finished run that Dask would compute again."""
    raise UpstreamLost(
        f"the value of {run} was lost with its Dask worker {worker}, which died; a finished "
        "run is never run again (its side effects would repeat), so what needs it cannot run"
    )


def _lost_worker(run: str, worker: str) -> None:
    """Runs in place of an attempt Dask would start again after its worker died."""
    raise WorkerLost(f"the Dask worker {worker} running it died (rescheduled by Dask, not re-run)")


class LostResultGuard(SchedulerPlugin):
    """On the scheduler: Dask never runs a task run's engine twice for one attempt.

    When a worker dies, Dask computes again what it held that someone still wants: a finished
    run's value (its `main` task: so a downstream submitted later, or the flow's `result()`,
    would re-execute the task, repeating its side effects), and, where `allowed-failures` > 0,
    the attempts it was running. The scheduler publishes the worker's removal (which tasks it
    held, which it was running) before it acts on it; this plugin then swaps those `main` tasks'
    specs for one that raises `UpstreamLost` (a finished run) or `WorkerLost` (an attempt cut
    short), naming the run and the worker. Dask's transitions stay its own; only what a
    recomputation would run changes. It costs nothing per task: one look at each event."""

    idempotent = True
    name = "headwater-lost-result-guard"

    def __init__(self) -> None:
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def log_event(self, topic: str, msg: Any) -> None:
        if topic != "all" or type(msg) is not dict or msg.get("action") != "remove-worker":
            return
        worker = str(msg.get("worker"))
        self._replace(msg.get("lost-computed-tasks", ()), _lost_result, worker)
        if not msg.get("expected"):  # a worker retired on purpose hands its tasks over
            self._replace(msg.get("processing-tasks", ()), _lost_worker, worker)

    def _replace(self, keys: Any, stand_in: Callable[[str, str], None], worker: str) -> None:
        tasks = self.scheduler.tasks
        for key in keys:
            ts = tasks.get(key)
            if ts is not None and getattr(ts.run_spec, "func", None) is _run:
                ts.run_spec = DaskTask(key, stand_in, _run_label(key), worker)


def _run_label(key: Any) -> str:
    """The run a `main` key names (`{run name}-{run id}-{n}`), as messages show it."""
    parts = str(key).rsplit("-", 6)
    if len(parts) == 7:
        return f"task run {parts[0]!r} ({'-'.join(parts[1:6])})"
    return f"Dask task {key!r}"


def _worker_lost(exc: BaseException) -> BaseException:
    """Dask's `KilledWorker` as headwater's `WorkerLost`, naming the worker (the caller chains
    the original as `__cause__`)."""
    worker = getattr(exc, "last_worker", None)
    where = getattr(worker, "address", "?")
    pid = getattr(worker, "pid", None)
    return WorkerLost(f"the Dask worker {where}{f' (pid {pid})' if pid else ''} running it died (KilledWorker)")


def _mapped(exc: BaseException, future: DaskFuture) -> BaseException:
    """What a runner future raises for Dask's error: a `KilledWorker` of the attempt becomes
    `WorkerLost`; of its `meta` task alone (the worker died once the run had finished there,
    before its outcome left) `UpstreamLost`, so the finished run is not run again."""
    if not isinstance(exc, distributed.scheduler.KilledWorker):
        return exc
    lost = _worker_lost(exc)
    if exc.task == future.meta.key:
        lost = UpstreamLost(f"{_run_label(future.main.key)} finished, but {lost}: its outcome was lost with it")
    lost.__cause__ = exc
    return lost


class DaskFuture:
    """A runner future for a call on Dask: `result()` is its outcome, the data left behind."""

    __slots__ = ("run_id", "main", "meta")

    def __init__(self, run_id: UUID, main: Any, meta: Any) -> None:
        self.run_id = run_id
        self.main = main  # holds the data on the cluster while this future lives
        self.meta = meta

    def result(self, timeout: float | None = None) -> Any:
        try:
            outcome = self.meta.result(timeout)
        except distributed.scheduler.KilledWorker as exc:
            raise _mapped(exc, self) from exc
        data = getattr(getattr(outcome, "state", None), "data", None)
        handle = getattr(data, "handle", None)
        if type(handle) is DaskData and handle._future is None:
            handle._future = self.main
        return outcome

    def exception(self, timeout: float | None = None) -> BaseException | None:
        exc = self.meta.exception(timeout)
        return None if exc is None else _mapped(exc, self)

    def done(self) -> bool:
        return self.meta.done()  # type: ignore[no-any-return]

    def running(self) -> bool:
        """Dask does not tell a client whether a task started: true until it is done."""
        return not self.meta.done()

    def cancel(self) -> bool:
        """Withdraw the call. One already running on a worker runs to its end there (Dask
        cannot interrupt it); the flow has stopped listening."""
        if self.meta.done():
            return False
        self.meta.cancel()
        self.main.cancel()
        return True

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        self.meta.add_done_callback(lambda _meta: call_done_callback(fn, self))


def _import(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _key_prefix(call: TaskCall) -> str:
    run = getattr(call.payload, "task_run", None)  # the runtime's payload; a bare call has none
    return str(getattr(run, "name", "call"))


class DaskTaskRunner(TaskRunner):
    """Runs task runs on Dask. Without `address`, starts a `LocalCluster` (or `cluster_class`
    with `cluster_kwargs`, adapted with `adapt_kwargs`) and closes it at shutdown. `address`
    may be a scheduler address, a `distributed.Client` or a cluster object: the runner uses it
    and never closes it (a client it opens to it, it closes)."""

    name = "dask"

    def __init__(
        self,
        address: Any = None,
        cluster_class: type | str | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if address is not None and (cluster_class or cluster_kwargs or adapt_kwargs):
            raise ValueError("give either an address to connect to or a cluster to start, not both")
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self.client: distributed.Client | None = None
        self._owned: list[Any] = []  # what start() created, closed in reverse order
        self._counter = itertools.count()

    def start(self) -> None:
        if self.client is not None:
            return
        target = self.address
        if isinstance(target, distributed.Client):
            _guard(target)
            self.client = target
            return
        try:
            if target is None:
                cls = self.cluster_class or distributed.LocalCluster
                cls = _import(cls) if isinstance(cls, str) else cls
                with dask_config.set({ALLOWED_FAILURES: 0}):  # one execution per attempt
                    target = cls(**self.cluster_kwargs)
                self._owned.append(target)
                if self.adapt_kwargs:
                    target.adapt(**self.adapt_kwargs)
            client = distributed.Client(target, **self.client_kwargs)  # type: ignore[no-untyped-call]
            self._owned.append(client)
            _guard(client)
        except BaseException:
            self.shutdown()  # a cluster started for a client that never came up
            raise
        self.client = client

    def submit(self, call: TaskCall) -> RunnerFuture:
        client = self.client
        if client is None:
            raise BrokenRunner("DaskTaskRunner is not running: use it inside a flow or a `with` block")
        upstream: list[Any] = []
        slots: list[int] = []
        remote: list[Any] = []  # Dask futures of this runner's earlier calls
        for slot, item in enumerate(call.upstream):
            if type(item) is DaskFuture:
                upstream.append(None)
                slots.append(slot)
                remote.append(item.main)
            else:
                upstream.append(item)
        blob = pickled_call((call.entrypoint, call.payload, upstream, slots), call.run_id, "a Dask worker")
        key = f"{_key_prefix(call)}-{call.run_id}-{next(self._counter)}"
        # Client.submit ignores retries=0 when an annotation sets retries: override it there.
        once = annotate(retries=0) if "retries" in get_annotations() else nullcontext()
        try:
            with once:
                main = client.submit(_run, blob, *remote, key=key, pure=False, retries=0)
                meta = client.submit(
                    _without_data, DaskData(key), main, key=f"{key}-state", pure=False, retries=0
                )
        except RuntimeError as exc:  # the client closed
            raise BrokenRunner(f"DaskTaskRunner cannot take work: {exc}") from exc
        return DaskFuture(call.run_id, main, meta)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Close the client and cluster this runner started (closing a client releases its
        futures: queued calls are dropped, their values freed); nothing passed in."""
        owned, self._owned, self.client = self._owned, [], None
        for thing in reversed(owned):
            thing.close()

    def duplicate(self) -> DaskTaskRunner:
        return DaskTaskRunner(
            self.address, self.cluster_class, self.cluster_kwargs, self.adapt_kwargs, self.client_kwargs
        )

    def __repr__(self) -> str:
        where = self.address if self.address is not None else self.cluster_class or "LocalCluster"
        return f"DaskTaskRunner({where!r})"


_guarded: weakref.WeakSet[Any] = weakref.WeakSet()  # clients whose scheduler has the guard


def _guard(client: Any) -> None:
    """Install `LostResultGuard` on the client's scheduler (once per client; the scheduler
    keeps the first of the same name)."""
    if client in _guarded:
        return
    try:
        client.register_plugin(LostResultGuard())
    except Exception as exc:
        raise BrokenRunner(
            f"DaskTaskRunner cannot install its scheduler plugin on {client.scheduler.address}: "
            f"{type(exc).__name__}: {exc}; the scheduler must be able to import headwater"
        ) from exc
    _guarded.add(client)


@contextmanager
def get_dask_client(timeout: float | None = None) -> Iterator[distributed.Client]:
    """A client of the cluster the current task runs on, to use Dask collections in a task:

        with get_dask_client() as client:
            total = client.compute(frame.x.sum()).result()

    On a worker the task's thread leaves the worker's pool while inside (`worker_client`), so
    waiting on the work it started cannot starve the cluster. Elsewhere, the current client."""
    try:
        distributed.get_worker()
    except ValueError:
        yield distributed.get_client(timeout=timeout)
        return
    with distributed.worker_client(timeout=timeout, separate_thread=True) as client:
        yield client
