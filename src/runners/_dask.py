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
  naming the run, and the scheduler ends that run CRASHED with the cause;
- the task's own exception: a FAILED state, as on every runner (the engine catches it);
- a worker lost mid-task: Dask reports `KilledWorker` and the run ends CRASHED, the message
  naming it. Each attempt runs at most once: calls go in with `retries=0`, and a cluster this
  runner starts gets `distributed.scheduler.allowed-failures = 0`. A cluster passed in keeps
  its own setting, so set it there too, or Dask may run a call again after a worker dies;
- the scheduler lost mid-flow: the client cancels every future at once; each unfinished run
  ends CRASHED with a `BrokenRunner` naming the scheduler, new calls are refused while the
  client is not connected, and `lost()` makes the flow end CRASHED too (`_headwatch.py`).

Before the flow hands it anything, `preflight(check)` runs the flow's check on every worker
the scheduler knows (`Client.run`, one round trip, no task; `_preflight.py`).

`dask.annotate(...)` around `Task.submit` applies when the call is handed to Dask in the same
block (the runner reads nothing itself; `Client.submit` merges the annotations in effect, but
never `retries`). A call whose upstreams are still running is handed over later, from Dask's
callback thread, and gets whatever annotations are in effect then (Dask keeps them in its
process-wide config).
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager, nullcontext
from typing import Any
from uuid import UUID

import cloudpickle
import distributed
from dask import config as dask_config
from dask.base import annotate, get_annotations

from ..errors import BrokenRunner, ShippingError
from ._headwatch import DaskSchedulerWatch, refuse_if_lost, scheduler_lost, watch_dask_client
from ._preflight import check_dask_workers
from ._shipping import pickled_call
from .base import Outcome, RunnerFuture, TaskCall, TaskRunner, WorkerCheck, call_done_callback

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
        return self._future.result(timeout).state.data

    def __repr__(self) -> str:
        return f"<on a Dask worker: {self.key}>"


def _run(blob: bytes, *remote: Any) -> Any:
    """On a worker: the engine, with the upstream outcomes Dask resolved put in their places."""
    entrypoint, payload, upstream, slots = cloudpickle.loads(blob)
    for slot, outcome in zip(slots, remote):
        upstream[slot] = outcome
    return entrypoint(payload, tuple(upstream))


def _without_data(handle: DaskData, outcome: Any) -> Any:
    return outcome.detach(handle) if isinstance(outcome, Outcome) else outcome


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
        except CancelledError as exc:  # by us, or by a client that lost its scheduler
            lost = scheduler_lost(self.meta.client, exc)
            if lost is None:
                raise
            raise lost from exc
        data = getattr(getattr(outcome, "state", None), "data", None)
        handle = getattr(data, "handle", None)
        if type(handle) is DaskData and handle._future is None:
            handle._future = self.main
        return outcome

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self.meta.exception(timeout)  # type: ignore[no-any-return]

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
        self._watch: DaskSchedulerWatch | None = None
        self._losses_at_start = 0

    def start(self) -> None:
        if self.client is not None:
            return
        target = self.address
        if isinstance(target, distributed.Client):
            self._watch_scheduler(target)
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
        except BaseException:
            self.shutdown()  # a cluster started for a client that never came up
            raise
        self._owned.append(client)
        self._watch_scheduler(client)
        self.client = client

    def _watch_scheduler(self, client: distributed.Client) -> None:
        self._watch = watch_dask_client(client)
        self._losses_at_start = self._watch.losses

    def preflight(self, check: WorkerCheck) -> None:
        """Run `check` on every worker the scheduler knows now (`Client.run`, one round trip,
        no task); raise `PreflightFailed` naming each unfit worker by its address."""
        if self.client is not None:
            check_dask_workers(self.client, check)

    def lost(self) -> BrokenRunner | None:
        """The loss of the scheduler since this runner started: runs it cancelled or refused,
        or a client that is not connected now."""
        watch, client = self._watch, self.client
        if watch is None:
            return None
        if client is not None and client.status != "running":
            watch.lose()
        return watch.lost_since(self._losses_at_start)

    def submit(self, call: TaskCall) -> RunnerFuture:
        client = self.client
        if client is None:
            raise BrokenRunner("DaskTaskRunner is not running: use it inside a flow or a `with` block")
        if self._watch is not None:
            refuse_if_lost(client, self._watch)
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
