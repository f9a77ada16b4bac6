"""Noticing that a cluster's head went away mid-flow, and failing the runs it took with it.

Left alone, neither backend ends a flow well when its head dies:

- Dask: the client notices the closed connection at once and cancels every future it holds
  (`FutureCancelledError`, reason "scheduler-connection-lost"), which reads as runs cancelled
  before they started; calls submitted while it tries to reconnect (for its `timeout`, 30 s by
  default) wait in its buffer. (distributed before mid-2024 gives no reason: there those runs
  stay CANCELLED, and the flow still ends CRASHED, `lost()` finding the client disconnected.)
- Ray: the driver keeps waiting on its object refs while it tries to reconnect to the GCS, and
  after `gcs_rpc_server_reconnect_timeout_s` (60 s) Ray ends the whole process: the flow run is
  left RUNNING until the state service's sweeper reaps it, with no word of why.

So each runner holds a watch, made when it starts. `DaskSchedulerWatch` turns the client's
own signal into a `BrokenRunner` naming the scheduler (`scheduler_lost`, read where a runner
future resolves) and refuses new calls while the client is not running (one attribute read
per call). `RayHeadWatch` is a daemon thread that opens a TCP connection to the GCS every
`PROBE_INTERVAL` seconds; after `HEAD_GRACE` seconds without one it fails every unfinished
runner future of its runner with a `BrokenRunner` naming the head, and refuses new calls
(per call: a weak-set add under a lock). Either way the scheduler sees those attempts lost,
the runs end CRASHED, and the runner's `lost()` returns the error, so the flow run ends
CRASHED with it too. Ray may fail runs on the dead node by itself first (`NodeDiedError`):
those end CRASHED with Ray's error, and `lost()` waits out the grace of a head that is silent
when the flow asks, so the flow still learns it lost the head.

A head that comes back does not undo a loss: the runs it held are gone. A silent partition
(no FIN, no RST) is noticed by Dask when TCP gives up on the connection
(`distributed.comm.timeouts.tcp`, 30 s by default) and by the Ray watch after `HEAD_GRACE`.
A Ray Client connection (`ray://`) is not watched: Ray Client reconnects on its own.
"""

from __future__ import annotations

import socket
import threading
import time
import weakref
from concurrent.futures import Future, InvalidStateError
from typing import Any

from ..errors import BrokenRunner

#: Seconds between two probes of a Ray head's GCS port.
PROBE_INTERVAL = 1.0
#: Seconds a Ray head may stay unreachable before its runner's runs are declared lost. Longer
#: than a probe's hiccup under load, far shorter than Ray's own 60 s before it ends the process.
HEAD_GRACE = 5.0
_RERUN = "the task runs it held are lost: start it again and rerun the flow"

# -- Dask ------------------------------------------------------------------------------------

_dask_watches: weakref.WeakKeyDictionary[Any, DaskSchedulerWatch] = weakref.WeakKeyDictionary()


class DaskSchedulerWatch:
    """Whether a Dask client lost its scheduler, shared by every runner using that client.

    `error` is the loss while the client has not reconnected; `losses` counts the losses seen
    (a run cancelled by one, a call refused, the client found not running), and a runner
    compares it with the count when it started (`lost_since`), so a loss a reconnection ended
    still counts for the flows it hit and not for later ones."""

    __slots__ = ("address", "losses", "error", "last", "__weakref__")

    def __init__(self, address: str) -> None:
        self.address = address
        self.losses = 0
        self.error: BrokenRunner | None = None
        self.last: BrokenRunner | None = None

    def lose(self) -> BrokenRunner:
        """Record a loss (once until the client reconnects) and return its error."""
        if self.error is None:
            self.error = self.last = BrokenRunner(
                f"lost the Dask scheduler at {self.address}: the connection to it closed (the "
                f"scheduler process or its host went away); {_RERUN}"
            )
            self.losses += 1
        return self.error

    def lost_since(self, losses: int) -> BrokenRunner | None:
        return self.last if self.losses > losses else None


def watch_dask_client(client: Any) -> DaskSchedulerWatch:
    """The watch of `client` (a running `distributed.Client`), made on first use."""
    watch = _dask_watches.get(client)
    if watch is None:
        watch = _dask_watches.setdefault(client, DaskSchedulerWatch(str(client.scheduler.address)))
    return watch


def scheduler_lost(client: Any, cancelled: BaseException) -> BrokenRunner | None:
    """The error to raise instead of `cancelled` (a Dask future's `CancelledError`) when the
    client cancelled it because it lost its scheduler; None for any other cancellation."""
    if getattr(cancelled, "reason", None) != "scheduler-connection-lost":
        return None
    watch = _dask_watches.get(client)
    if watch is None:
        address = getattr(getattr(client, "scheduler", None), "address", "?")
        watch = DaskSchedulerWatch(str(address))
    return BrokenRunner(str(watch.lose()))  # one per run: a raised error carries its traceback


def refuse_if_lost(client: Any, watch: DaskSchedulerWatch) -> None:
    """Raise the loss when `client` is not running (it lost its scheduler and is trying to
    reconnect, or gave up); a client that reconnected takes work again."""
    if client.status == "running":
        if watch.error is not None:  # reconnected, to a scheduler that knows nothing of the lost runs
            watch.error = None
        return
    raise BrokenRunner(str(watch.lose()))


# -- Ray -------------------------------------------------------------------------------------


class RayHeadWatch:
    """A thread probing a Ray head's GCS port; see the module docstring."""

    def __init__(self, gcs_address: str, *, interval: float = PROBE_INTERVAL, grace: float = HEAD_GRACE) -> None:
        host, _, port = gcs_address.rpartition(":")
        self.address = gcs_address
        self._where = (host.strip("[]"), int(port))
        self._interval, self._grace = interval, grace
        self._lock = threading.Lock()
        self._futures: weakref.WeakSet[Future[Any]] = weakref.WeakSet()
        self._stopped = threading.Event()
        self._silent_since: float | None = None
        self._decided = threading.Event()  # set once the head is declared lost
        self.error: BrokenRunner | None = None
        threading.Thread(target=self._watch, name="headwater-ray-head-watch", daemon=True).start()

    def track(self, future: Future[Any]) -> None:
        """Fail `future` with the loss if the head goes away before it is done."""
        with self._lock:
            if self.error is None:
                self._futures.add(future)
                return
        self._fail([future], self.error)

    def refuse(self) -> BrokenRunner:
        """The loss, for a call made after it (call only when `error` is set)."""
        assert self.error is not None
        return BrokenRunner(str(self.error))

    def verdict(self) -> BrokenRunner | None:
        """The loss, if the head was declared lost. While it is silent but still within its
        grace, waits for the verdict: Ray may fail runs on a dead node before the grace ends,
        and the flow asking now should learn why."""
        if self.error is None and self._silent_since is not None:
            self._decided.wait(self._grace + 2 * self._interval)
        return self.error

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        while not self._stopped.wait(self._interval):
            if self._answers():
                self._silent_since = None
                continue
            now = time.monotonic()
            if self._silent_since is None:
                self._silent_since = now
            elif now - self._silent_since >= self._grace:
                self._lose(now - self._silent_since)
                return

    def _answers(self) -> bool:
        try:
            socket.create_connection(self._where, timeout=self._interval).close()
        except OSError:
            return False
        return True

    def _lose(self, silent: float) -> None:
        error = BrokenRunner(
            f"lost the Ray head at {self.address}: its GCS has not answered for {silent:.0f} s "
            f"(the head node or its processes went away); {_RERUN}"
        )
        with self._lock:
            self.error = error
            futures, self._futures = list(self._futures), weakref.WeakSet()
        self._decided.set()
        self._fail(futures, error)

    def _fail(self, futures: list[Future[Any]], error: BrokenRunner) -> None:
        for future in futures:
            try:
                future.set_exception(BrokenRunner(str(error)))  # one per run, as it is raised
            except InvalidStateError:  # Ray finished it meanwhile
                continue
