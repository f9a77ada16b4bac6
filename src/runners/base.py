"""The one interface every task runner implements, and the types that cross it.

A runner is an executor in the `concurrent.futures` sense:

- `submit(call) -> RunnerFuture`: run `call.entrypoint(call.payload, upstream)` somewhere and
  return at once. `call.upstream` holds, per upstream run, either a future this runner
  returned earlier or an outcome that is already here; the runner hands the entrypoint the
  *outcomes* (a future of its own is resolved where the call runs, so a cluster runner passes
  its native future and the data moves worker to worker). The runtime submits a call once its
  upstreams are done, so a worker never waits inside a task for an argument; a runner that
  sets `starts_after_upstreams` (its engine holds a task until its inputs exist) gets calls
  whose upstreams are its own futures still running.
- `shutdown(wait=True, cancel_futures=False)`, also run by `__exit__`.
- `duplicate()`: a fresh, unstarted runner with the same settings, so one runner object given
  to `@flow(task_runner=...)` serves many flow runs, each with its own workers.

Two optional hooks, no-ops here, for runners whose workers live elsewhere (Dask, Ray):

- `preflight(check)`: the flow calls it once, right after `start()` and before any `submit`,
  with a picklable `WorkerCheck` it built (does this worker have a compatible headwater, can
  it reach the state service?). The runner runs it on every worker it has now, in one round
  trip, and raises `PreflightFailed` naming each worker that failed and why; the flow run then
  ends CRASHED without running anything. Runners need not know what is checked: the runtime
  builds the check, the runner only knows where its workers are.
- `lost()`: why the runner lost its cluster since it started (a Dask scheduler or a Ray head
  that went away), else None. The runner fails the runs the loss took with a `BrokenRunner`
  saying so, and refuses new ones; the flow asks at its end and then ends CRASHED.
- `interrupt(stop)`: the flow was cancelled; run the picklable `WorkerInterrupt` the runtime
  built on every worker, where it interrupts the flow's attempts running there, and return
  the names it gives back. Like the check, the runner does not know what `stop` does.

The entrypoint is the runtime's task engine, never the bare user function: retries, caching,
slots and state reporting behave the same on every backend, and the runner knows nothing of
them. Its return value is an `Outcome`: the run's final state with the data where it ran. A
runner whose data stays remote returns `outcome.detach(handle)` from `RunnerFuture.result()`:
the same outcome, with the data left behind and fetched through `handle` only when asked
(Hamilton's executors keep `get_state` and `get_result` apart the same way). In-process
runners return the outcome as it is.

A runner owns only what it created: an executor or client passed in is never shut down by it.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable
from uuid import UUID

from ..errors import BrokenRunner

class DataHandle(Protocol):
    """Where a run's data lives when it is not here; `fetch` brings it here."""

    def fetch(self, timeout: float | None = None) -> Any: ...


@runtime_checkable
class Outcome(Protocol):
    """What an entrypoint returns: a run's final state (opaque to runners) and its data."""

    def detach(self, handle: DataHandle) -> Outcome:
        """The same outcome without its data, which stays behind `handle`."""
        ...


#: `entrypoint(payload, upstream_outcomes) -> Outcome`; must be picklable for remote runners.
Entrypoint = Callable[[Any, tuple[Any, ...]], Any]

log = logging.getLogger(__name__)


class TaskCall(NamedTuple):
    """Everything a runner needs to run one task run; picklable when its parts are.

    `upstream` items are futures this runner returned or outcomes already at hand. A
    NamedTuple (immutable, like a frozen dataclass) because one is built per attempt on the
    hot path, where a frozen dataclass costs several times as much."""

    run_id: UUID
    entrypoint: Entrypoint
    payload: Any
    upstream: tuple[Any, ...] = ()
    #: what `TaskRunner.submission_options` captured when the run was submitted
    options: Any = None


class WorkerCheck(Protocol):
    """What `TaskRunner.preflight` runs on each worker: None when the worker can run the flow's
    task runs, else one line saying what is wrong there and how to fix it. Picklable, never
    raises, and returns within `timeout` seconds."""

    @property
    def timeout(self) -> float: ...

    def __call__(self) -> str | None: ...


class WorkerInterrupt(Protocol):
    """What `TaskRunner.interrupt` runs on each worker: interrupts the attempts running there
    that the runtime wants stopped (a cancelled flow run's) and returns their names, each
    saying whether it stopped. Picklable, never raises, returns within a second."""

    def __call__(self) -> list[str]: ...


@runtime_checkable
class RunnerFuture(Protocol):
    """The stdlib future surface, plus the id of the run it belongs to. `result()` is the
    run's outcome (its data possibly detached), never a bare value."""

    run_id: UUID

    def result(self, timeout: float | None = None) -> Any: ...

    def exception(self, timeout: float | None = None) -> BaseException | None: ...

    def done(self) -> bool: ...

    def running(self) -> bool: ...

    def cancel(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[Any], object]) -> None: ...


class TaskRunner(abc.ABC):
    """Base class of every runner. Subclasses set `name` and implement the abstract methods."""

    name: ClassVar[str]
    #: True when `submit` may be given a call whose upstreams are this runner's own futures
    #: still running: the runner starts the call once they finish, where they ran (Dask and
    #: Ray hold a task until its inputs exist). The runtime then hands over a dependent run at
    #: once instead of after hearing that its upstreams finished, sparing a round trip through
    #: the flow per step of a chain. If an upstream does not complete, the call fails with the
    #: runner's error and the runtime holds the run until its upstreams finish (`Premature`).
    starts_after_upstreams: ClassVar[bool] = False
    #: True when `submit` runs the call to its end in the calling thread (the sequential
    #: runner) rather than only queueing it: the runtime then never submits from a thread that
    #: must stay free, such as the one delivering concurrency-slot grants.
    runs_inline: ClassVar[bool] = False

    @abc.abstractmethod
    def submit(self, call: TaskCall) -> RunnerFuture:
        """Start running `call`; return at once with a future for its outcome."""

    @abc.abstractmethod
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Release what this runner created; with `wait`, after running work finishes."""

    @abc.abstractmethod
    def duplicate(self) -> TaskRunner:
        """A new, unstarted runner with the same settings."""

    def start(self) -> None:
        """Acquire workers; called by `__enter__`. Runners that need nothing keep this."""

    def submission_options(self, task_options: Mapping[str, Any]) -> Any:
        """Per-call settings, read in the thread that calls `.submit()`: from the context
        there (`dask.annotate(...)`, `remote_options(...)`) and the task's `runner_options`.
        The runtime hands the result back as `TaskCall.options` when it dispatches the call,
        which may be later and on another thread (once its upstreams finish), so a context
        manager around `.submit()` applies however long the call waits. Runners with no
        per-call settings keep this: None, and a task's `runner_options` mean nothing to them."""
        return None

    def preflight(self, check: WorkerCheck) -> None:
        """Run `check` on every worker there is now and raise `PreflightFailed` naming those
        that fail (see the module docstring). Workers that join later are not checked here.
        In-process runners and the process pool keep this no-op: their workers are this
        process or copies of it, which the flow has checked already."""

    def lost(self) -> BrokenRunner | None:
        """Why this runner lost its cluster since it started, else None (see above)."""
        return None

    def interrupt(self, stop: WorkerInterrupt) -> list[str]:
        """Run `stop` on every worker there is now; what they return, together. Kept by
        runners whose calls run in the flow's process (the runtime interrupts those itself)
        and by those that cannot reach a running call but through its own handle (Ray stops
        one in `RunnerFuture.cancel`)."""
        return []

    def __enter__(self) -> TaskRunner:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FinishedFuture:
    """A runner future that is done from birth: what an inline runner returns. Cheaper than
    a stdlib `Future`, which allocates a condition variable nobody will wait on."""

    __slots__ = ("run_id", "_value", "_error")

    def __init__(self, run_id: UUID, value: Any = None, error: BaseException | None = None) -> None:
        self.run_id = run_id
        self._value = value
        self._error = error

    def result(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._error

    def done(self) -> bool:
        return True

    def running(self) -> bool:
        return False

    def cancel(self) -> bool:
        return False

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        call_done_callback(fn, self)


def call_done_callback(fn: Callable[[Any], object], future: Any) -> None:
    """`fn(future)`, logging what it raises instead of raising, as `concurrent.futures` does.

    Callbacks run on whichever thread finishes the future, usually a pool worker or the
    runtime's own bookkeeping: an exception escaping there would kill the worker (and hang the
    runs queued behind it) or skip the callbacks after it, which the runtime relies on.
    """
    try:
        fn(future)
    except Exception:
        log.exception("exception calling callback for %r", future)


def resolve_upstream(upstream: tuple[Any, ...], own: type) -> tuple[Any, ...]:
    """The outcomes of a call's upstreams: futures of type `own` (the runner's) are resolved,
    outcomes already at hand pass through. Shared by in-process runners."""
    return tuple([u.result() if type(u) is own else u for u in upstream])  # type: ignore[attr-defined]


# A worker thread that blocks on another task's future can starve its pool (every worker
# waiting, nothing left to run what they wait for). Pools register a hook for their worker
# threads; whoever is about to block calls `blocking_wait()` so the pool can lend a thread.
_blocking_hooks = threading.local()


def set_blocking_hook(hook: Callable[[], Any] | None) -> None:
    """Register, for the current thread, a context-manager factory used around blocking waits."""
    _blocking_hooks.hook = hook


def current_blocking_hook() -> Callable[[], Any] | None:
    """The current thread's hook, so a helper thread doing its work can take it on."""
    return getattr(_blocking_hooks, "hook", None)


@contextmanager
def blocking_wait() -> Iterator[None]:
    """Wrap a wait on another run; lets the current worker's pool compensate for the wait."""
    hook = current_blocking_hook()
    if hook is None:
        yield
        return
    with hook():
        yield
