"""Group commit: one thread owns all database writes and commits many requests at once.

Every writer (a unary SetState, a recorder batch, the sweeper) calls `submit(batch)` and gets
a `Future[BatchResult]`. The committer thread takes whatever is queued (up to `max_group`
batches), applies it in one SQLite transaction (in this process, or in a writer process of
its own: `writer_process.py`) and completes every future only after COMMIT,
so an acknowledgement always means committed. Under load the groups grow by themselves: while
one transaction commits, the next group queues up.

After each commit the committer calls its listeners (`add_listener`), on its own thread, so
readers that wait for new rows (a `FollowLogs` stream) are woken by the commit itself instead
of polling; a listener must be quick and must not raise.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from .errors import StorageError
from .records import Batch, BatchResult
from .storage import Storage
from .writer_process import IN_FLIGHT, OffloadingWriter, Ticket

log = logging.getLogger(__name__)

_STOP = object()


class GroupCommitter:
    """The single writer of a `Storage`."""

    def __init__(self, storage: Storage, *, max_group: int = 512, writer_process: str = "never") -> None:
        #: Applies each group: here, or in a writer process (`writer_process.py`).
        self.writer = OffloadingWriter(storage, writer_process)
        self._max_group = max_group
        self._queue: queue.SimpleQueue[tuple[Batch, Future[BatchResult]] | object] = (
            queue.SimpleQueue()
        )
        self._closed = False
        self.commits = 0
        self._listeners: list[Callable[[], None]] = []
        self._thread = threading.Thread(target=self._run, name="headwater-committer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> Future[BatchResult]:
        """Queue `batch`; the future resolves once it is committed (or failed)."""
        fut: Future[BatchResult] = Future()
        if self._closed:
            fut.set_exception(RuntimeError("state storage is closed"))
        else:
            self._queue.put((batch, fut))
        return fut

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every commit (on the committer thread)."""
        self._listeners.append(listener)

    def apply(self, batch: Batch, timeout: float | None = 30.0) -> BatchResult:
        """Submit and wait: the synchronous form used by unary calls."""
        return self.submit(batch).result(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Commit everything queued so far, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self.writer.close()

    def _take_group(self, wait: bool) -> tuple[list[tuple[Batch, Future[BatchResult]]], bool]:
        """What is queued (waiting for something when `wait`), and whether to stop after it."""
        try:
            first = self._queue.get() if wait else self._queue.get_nowait()
        except queue.Empty:
            return [], False
        if first is _STOP:
            return [], True
        group = [first]
        stop = False
        while len(group) < self._max_group:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            group.append(item)
        return group, stop  # type: ignore[return-value]

    def _run(self) -> None:
        # Groups the writer has started, oldest first. One that went to a writer process is
        # finished (waited for) only when nothing new is queued, when the process already
        # has as many as it takes, or at the end: meanwhile the next group is formed and sent.
        started: deque[tuple[list[tuple[Batch, Future[BatchResult]]], Ticket]] = deque()
        stop = False
        while not (stop and not started):
            group: list[tuple[Batch, Future[BatchResult]]] = []
            if not stop:
                group, stop = self._take_group(wait=not started)
            if group:
                started.append((group, self.writer.start([b for b, _ in group], time.time())))
            while started and (started[0][1].done or not group or stop or len(started) > IN_FLIGHT):
                self._finish(*started.popleft())

    def _finish(self, group: list[tuple[Batch, Future[BatchResult]]], ticket: Ticket) -> None:
        try:
            results = self.writer.finish(ticket)
        except Exception as exc:  # the whole transaction failed: every waiter learns why
            if isinstance(exc, StorageError):  # named already: no traceback to read past
                log.error("group commit of %d batches failed: %s", len(group), exc)
            else:
                log.exception("group commit of %d batches failed", len(group))
            for _, fut in group:
                fut.set_exception(exc)
            return
        self.commits += 1
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a reader's bug must not stop the single writer
                log.exception("commit listener failed")
        for (_, fut), result in zip(group, results):
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)
