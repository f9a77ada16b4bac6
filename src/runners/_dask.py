"""`DaskTaskRunner`: task runs on a Dask cluster, their data left on its workers.

Each call becomes one Dask task, which runs the task engine on a worker and keeps its whole
`RunOutcome`, value included, in that worker's memory. The worker also sends the flow that
outcome with the value detached behind a `DaskData` handle, as a Dask event on the runner's
own topic (a message through the scheduler, far cheaper than a second task); the flow's
future completes when it arrives. A downstream call on this runner gets the upstream's Dask
future, so Dask hands the outcome over worker to worker; the flow's process unpickles a value
only when someone asks for it (`State.result()` fetches through the handle). The runner future
keeps the Dask future alive, and so does the handle once the flow has the outcome, so Dask does
not release the data while the flow can still ask for it. Closing the runner's client releases
it all: fetch values inside the flow.

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
- the scheduler lost mid-flow: the client cancels every future at once; each unfinished run
  ends CRASHED with a `BrokenRunner` naming the scheduler, new calls are refused while the
  client is not connected, and `lost()` makes the flow end CRASHED too (`_headwatch.py`).

Before the flow hands it anything, `preflight(check)` runs the flow's check on every worker
the scheduler knows (`Client.run`, one round trip, no task; `_preflight.py`).

`dask.annotate(...)` around `Task.submit` (resources, priority, workers) is read there and kept
with the call, so it applies however long the call waits for its upstreams; a task's
`@task(runner_options={...})` are annotations too, which those around the submit override.
`retries` never applies: Dask would run an attempt twice.
"""

from __future__ import annotations

import importlib
import itertools
import queue
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager, nullcontext
from typing import Any, NamedTuple
from uuid import UUID, uuid4

import cloudpickle
import distributed
from dask import config as dask_config
from dask._task_spec import Task as DaskTask
from dask.base import annotate, get_annotations
from dask.sizeof import sizeof
from distributed.diagnostics.plugin import SchedulerPlugin

from ..errors import BrokenRunner, ShippingError, UpstreamLost, WorkerLost
from ._headwatch import DaskSchedulerWatch, refuse_if_lost, scheduler_lost, watch_dask_client
from ._preflight import check_dask_workers
from ._shipping import Outgoing, arrived, fetched_value, pickled_call
from .base import RunnerFuture, TaskCall, TaskRunner, WorkerCheck, WorkerInterrupt, call_done_callback

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

    @staticmethod
    def fetch_many(handles: list[DaskData], timeout: float | None = None) -> list[Any]:
        """Several values in one gather (a request per value costs a round trip each)."""
        futures = [handle._future for handle in handles]
        if any(future is None for future in futures):
            raise ShippingError("some values are not reachable from here")
        return [fetched_value(outcome) for outcome in futures[0].client.gather(futures)]

    def __repr__(self) -> str:
        return f"<on a Dask worker: {self.key}>"


def _run(blob: bytes, topic: str, key: str, remote: list[Any]) -> Any:
    """On a worker: the engine, with the upstream outcomes Dask resolved put in their places.

    Returns the full outcome, which Dask keeps on this worker as an `Outgoing` (it leaves
    without its value if that does not pickle: see `_shipping.py`), and sends the flow the
    outcome without its data as a Dask event on the runner's topic: the flow learns how the run
    ended without a second Dask task per call (which halved throughput) and without the value."""
    entrypoint, payload, upstream, slots = cloudpickle.loads(blob)
    for slot, outcome in zip(slots, remote):
        upstream[slot] = arrived(outcome)
    outcome = entrypoint(payload, tuple(upstream))
    # `hasattr`, not `isinstance(outcome, Outcome)`: a runtime Protocol check costs 3.6 us
    if hasattr(outcome, "detach"):
        shown, kept = outcome.detach(DaskData(key)), Outgoing(outcome, getattr(payload, "task_run", None))
    else:  # a bare entrypoint's plain value
        shown = kept = outcome
    try:
        message = cloudpickle.dumps(shown)
    except Exception:  # the state's message or names do not pickle: the flow fetches it all
        message = None
    distributed.get_worker().log_event(topic, [key, message])
    return kept


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


def _mapped(exc: BaseException | None) -> BaseException | None:
    """What a runner future raises for Dask's error: a `KilledWorker` (the worker died under
    the attempt, before its outcome left) becomes `WorkerLost`, Dask's error its cause."""
    if not isinstance(exc, distributed.scheduler.KilledWorker):
        return exc
    lost = _worker_lost(exc)
    lost.__cause__ = exc
    return lost


class DaskFuture:
    """A runner future for a call on Dask: `result()` is its outcome, the data left behind.

    `_done` is completed by the runner when the worker's event arrives, or when Dask reports
    that the call failed (a lost worker, a cancellation) without one."""

    __slots__ = ("run_id", "main", "_done", "_lock")

    def __init__(self, run_id: UUID) -> None:
        self.run_id = run_id
        # The Dask future, once the call is handed over; it holds the data on the cluster
        # while this future lives.
        self.main: Any = None
        self._done: Future[Any] = Future()
        self._lock = threading.Lock()  # the Dask future and the outcome meet under it

    def _attach(self, main: Any) -> None:
        with self._lock:
            self.main = main
            if self._done.done() and self._done.exception() is None:
                self._bind(self._done.result())

    def _bind(self, outcome: Any) -> None:
        """Let the outcome's handle fetch through the Dask future (whichever came second)."""
        handle = getattr(getattr(getattr(outcome, "state", None), "data", None), "handle", None)
        if type(handle) is DaskData and handle._future is None:
            handle._future = self.main

    def _complete(self, outcome: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            if self._done.done():
                return
            if error is not None:
                self._done.set_exception(error)
                return
            if self.main is not None:
                self._bind(outcome)
            self._done.set_result(outcome)

    def result(self, timeout: float | None = None) -> Any:
        return self._done.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._done.exception(timeout)

    def done(self) -> bool:
        return self._done.done()

    def running(self) -> bool:
        """Dask does not tell a client whether a task started: true until it is done."""
        return not self._done.done()

    def cancel(self) -> bool:
        """Withdraw the call: queued, it never starts. One already running on a worker runs
        on there (Dask cannot interrupt it), unless the runtime interrupts it through
        `DaskTaskRunner.interrupt`; either way the flow has stopped listening."""
        if self._done.done():
            return False
        if self.main is not None:  # else still queued: the submitter skips it
            self.main.cancel()
        self._complete(error=CancelledError(f"the Dask call for run {self.run_id} was cancelled"))
        return True

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        self._done.add_done_callback(lambda _done: call_done_callback(fn, self))


class _Call(NamedTuple):
    future: DaskFuture
    key: str
    blob: bytes
    remote: list[DaskFuture]  # upstream calls, whose Dask futures become outcomes on the worker
    options: Any  # annotations captured at submit


class _Submissions:
    """Hands calls to Dask from a thread of its own, as many at once as have queued up.

    `Client.submit` costs the caller most of a millisecond per call (graph building, a hop to
    Dask's IO loop): 10,000 mapped runs held the flow's thread for 22 s. `submit` only queues;
    this thread sends whatever queued meanwhile as one `Client.map` per run of equal
    annotations, so the flow goes on while Dask takes the work."""

    def __init__(self, client: distributed.Client, topic: str, deliveries: _Deliveries) -> None:
        self._client, self._topic, self._deliveries = client, topic, deliveries
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="headwater-dask-submit", daemon=True)
        self._thread.start()

    def put(self, call: _Call) -> None:
        self._queue.put(call)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30.0)

    def _loop(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while (first := get()) is not None:
            batch, closing = [first], False
            while len(batch) < _MOST_PER_BATCH:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                batch.append(item)
            for options, group in itertools.groupby(batch, key=lambda call: call.options):
                self._send([call for call in group if not call.future.done()], options)
            if closing:
                return

    def _send(self, calls: list[_Call], options: Any) -> None:
        """Hand `calls` over, a call whose upstream is among them after that upstream."""
        batch: list[_Call] = []
        for call in calls:
            if batch and any(up.main is None for up in call.remote):
                self._map(batch, options)
                batch = []
            if any(up.main is None for up in call.remote):  # an upstream never handed over
                self._deliveries.pending.pop(call.key, None)
                call.future._complete(error=BrokenRunner("an upstream call was not handed to Dask"))
                continue
            batch.append(call)
        self._map(batch, options)

    def _map(self, calls: list[_Call], options: Any) -> None:
        if not calls:
            return  # all withdrawn while queued
        n = len(calls)
        keys = [call.key for call in calls]
        captured = annotate(**options) if options else nullcontext()
        try:
            with captured, _once():
                mains = self._client.map(
                    _run, [call.blob for call in calls], [self._topic] * n, keys,
                    [[up.main for up in call.remote] for call in calls], key=keys, pure=False, retries=0,
                )  # fmt: skip
        except Exception as exc:  # the client closed, or Dask refused the graph
            error = BrokenRunner(f"DaskTaskRunner could not hand calls to Dask: {type(exc).__name__}: {exc}")
            for call in calls:
                self._deliveries.pending.pop(call.key, None)
                call.future._complete(error=error)
            return
        on_main_done = self._deliveries.on_main_done
        for call, main in zip(calls, mains):
            call.future._attach(main)
            main.add_done_callback(on_main_done)  # type: ignore[no-untyped-call]


_MOST_PER_BATCH = 1000


class _Deliveries:
    """Completes the runner's futures, on a thread of its own, from the workers' events and
    from Dask's reports of calls that failed. Dask calls the event handler on its IO loop,
    which must not run the flow's bookkeeping (that submits the next calls)."""

    def __init__(self) -> None:
        self.pending: dict[str, DaskFuture] = {}
        self._queue: queue.SimpleQueue[tuple[str, Any, BaseException | None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._deliver, name="headwater-dask-outcomes", daemon=True)
        self._thread.start()

    def on_event(self, event: tuple[float, Any]) -> None:
        key, message = event[1]
        self._queue.put((key, message, None))

    def on_main_done(self, main: Any) -> None:
        if main.status == "finished":
            return  # its event is on its way (sent before the call returned)
        # Read from the future's state: `exception()` goes through the client's event loop
        # (stuck when the scheduler is gone) and returns None for a cancelled future, whose
        # `FutureCancelledError` says why (a lost scheduler, or us).
        error = getattr(getattr(main, "_state", None), "exception", None)
        if isinstance(error, CancelledError):
            error = scheduler_lost(main.client, error) or error
        else:
            error = _mapped(error)
        self._queue.put((main.key, None, error or CancelledError(f"Dask call {main.key} was cancelled")))

    def close(self, reason: str) -> None:
        self._queue.put(None)
        self._thread.join(5.0)
        pending, self.pending = self.pending, {}
        for future in pending.values():
            future._complete(error=CancelledError(reason))

    def _deliver(self) -> None:
        while (item := self._queue.get()) is not None:
            key, message, error = item
            future = self.pending.pop(key, None)
            if future is None:
                continue  # delivered already (an event, then the worker died), or withdrawn
            if error is not None:
                future._complete(error=error)
            elif message is None:  # the worker could not pickle the outcome alone: fetch it
                try:
                    future._complete(arrived(future.main.result()))
                except BaseException as exc:
                    future._complete(error=exc)
            else:
                future._complete(cloudpickle.loads(message))


_NO_ANNOTATIONS: Mapping[str, Any] = {}  # shared, never changed: what most calls capture


def _once() -> Any:
    """`Client.submit` lets a `retries` annotation override its `retries=0`: override it back,
    so Dask never runs an attempt twice (retries are the task's, run by headwater)."""
    return annotate(retries=0) if "retries" in get_annotations() else nullcontext()


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
    starts_after_upstreams = True

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
        self._topic = ""
        self._deliveries: _Deliveries | None = None
        self._submissions: _Submissions | None = None
        self._watch: DaskSchedulerWatch | None = None
        self._losses_at_start = 0

    def start(self) -> None:
        if self.client is not None:
            return
        target = self.address
        if isinstance(target, distributed.Client):
            _guard(target)
            self._watch_scheduler(target)
            self.client = target
            self._listen(target)
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
        self._watch_scheduler(client)
        self.client = client
        self._listen(client)

    def _listen(self, client: distributed.Client) -> None:
        """Subscribe to this runner's own event topic, on which workers report outcomes."""
        self._topic = f"headwater-outcomes-{uuid4().hex}"
        self._deliveries = _Deliveries()
        client.subscribe_topic(self._topic, self._deliveries.on_event)  # type: ignore[no-untyped-call]
        self._submissions = _Submissions(client, self._topic, self._deliveries)

    def _watch_scheduler(self, client: distributed.Client) -> None:
        self._watch = watch_dask_client(client)
        self._losses_at_start = self._watch.losses

    def preflight(self, check: WorkerCheck) -> None:
        """Run `check` on every worker the scheduler knows now (`Client.run`, one round trip,
        no task); raise `PreflightFailed` naming each unfit worker by its address."""
        if self.client is not None:
            check_dask_workers(self.client, check)

    def interrupt(self, stop: WorkerInterrupt) -> list[str]:
        """Run `stop` on every worker the scheduler knows (`Client.run`, one round trip, in
        each worker's event loop): Dask itself cannot stop a task that started (`cancel()`
        only releases its key; the worker's thread runs on), so the runtime's `stop` raises
        into the attempt's thread there. A worker that cannot be asked is skipped: its
        attempt runs to its end and its late reports are refused."""
        client = self.client
        if client is None or client.status != "running":
            return []
        try:
            answers = client.run(stop, on_error="return", wait=True)
        except Exception:  # the scheduler went away meanwhile: `lost()` says so
            return []
        return [name for answer in answers.values() if isinstance(answer, list) for name in answer]

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
        submissions, deliveries = self._submissions, self._deliveries
        if submissions is None or deliveries is None:
            raise BrokenRunner("DaskTaskRunner is not running: use it inside a flow or a `with` block")
        if self._watch is not None and self.client is not None:
            refuse_if_lost(self.client, self._watch)
        upstream: list[Any] = []
        slots: list[int] = []
        remote: list[Any] = []  # Dask futures of this runner's earlier calls
        for slot, item in enumerate(call.upstream):
            if type(item) is DaskFuture:
                upstream.append(None)
                slots.append(slot)
                remote.append(item)  # its Dask future is read when this call is sent
            else:
                upstream.append(item)
        blob = pickled_call((call.entrypoint, call.payload, upstream, slots), call.run_id, "a Dask worker")
        key = f"{_key_prefix(call)}-{call.run_id}-{next(self._counter)}"
        future = DaskFuture(call.run_id)
        deliveries.pending[key] = future
        # A call made without the runtime (no options captured) takes the annotations here.
        options = call.options if call.options is not None else get_annotations()
        submissions.put(_Call(future, key, blob, remote, options))
        return future

    def submission_options(self, task_options: Mapping[str, Any]) -> Mapping[str, Any]:
        """The `dask.annotate(...)` annotations around the submit over the task's
        `runner_options`, kept until the call is handed to Dask (empty when there are none)."""
        around = get_annotations()
        if not task_options and not around:
            return _NO_ANNOTATIONS
        return {**task_options, **around}

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Close the client and cluster this runner started (closing a client releases its
        futures: queued calls are dropped, their values freed); nothing passed in."""
        client, owned, self._owned, self.client = self.client, self._owned, [], None
        deliveries, self._deliveries = self._deliveries, None
        submissions, self._submissions = self._submissions, None
        if submissions is not None:
            submissions.close()
        if client is not None and deliveries is not None:
            _forget_topic(client, self._topic)
            deliveries.close("the Dask runner shut down before the call finished")
        for thing in reversed(owned):
            thing.close()

    def duplicate(self) -> DaskTaskRunner:
        return DaskTaskRunner(
            self.address, self.cluster_class, self.cluster_kwargs, self.adapt_kwargs, self.client_kwargs
        )

    def __repr__(self) -> str:
        where = self.address if self.address is not None else self.cluster_class or "LocalCluster"
        return f"DaskTaskRunner({where!r})"


def _forget_topic(client: distributed.Client, topic: str) -> None:
    """Stop listening on `topic` and drop the events the scheduler kept for it (it keeps the
    latest 100,000 of every topic for its life, which on a long-lived cluster adds up)."""
    if client.status != "running":
        return  # no scheduler to tell (it went away): asking would wait for it to come back
    try:
        client.unsubscribe_topic(topic)  # type: ignore[no-untyped-call]
        client.run_on_scheduler(_drop_topic, topic)  # type: ignore[no-untyped-call]
    except Exception:  # the scheduler is gone or refuses code: its memory is not ours to free
        pass


def _drop_topic(topic: str, dask_scheduler: Any = None) -> None:
    topics = getattr(getattr(dask_scheduler, "_broker", None), "_topics", None)
    if topics is not None:
        topics.pop(topic, None)


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
