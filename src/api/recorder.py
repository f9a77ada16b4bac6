"""A recorder: the runtime's non-blocking path for reporting runs and states (this process's
recorders are made and ended in `process_recorders.py`).

The hot path (`flow_run_created`, `task_run_created`, `state_changed`, `heartbeat`) is one
`deque.append` (atomic under the GIL, so any thread may call it; ~0.1-0.3 µs). While there
is work a background thread wakes every `interval` (5 ms), drains the deque into batches, and
ships them over a sink; with none it sleeps until a producer wakes it. Sinks:

- `_LocalSink`: the embedded server lives in this process, so batches go straight to its
  group committer (no encoding, no socket);
- `_GrpcSink`: one unary `RecordBatch` call per batch to a remote server, acknowledged after
  it is committed; no call, and no server thread, while the process idles.

Log lines (`log`) go to a bounded buffer of their own (`log_buffer.py`): a log storm drops
and counts records instead of stalling tasks or growing memory, and is told by a WARNING
record per flow run. Log lines travel in batches of their own, formed before the states of
the same pass (so a run's lines reach the server before its final state), and a lost log
batch is counted and told, never a `RecordingError`.

Ordering: one FIFO, so a run's records reach the server in the order this process produced
them, create-run records before any state that follows them. Batches are acknowledged in
order; `flush()` puts a marker in the FIFO and waits until every batch before it is resolved.

Failure: while the server is away the recorder keeps buffering (at most `max_buffered`
records, default 1,000,000, about 200 MB; beyond that the oldest batch is dropped) and re-sends
every unacknowledged batch when a stream comes back (idempotent by transition id). A batch
still unacknowledged `grace` seconds (default 30) after the server went away is dropped; so is
a record the server cannot store (`Batch.without_unstorable`: it fails alone, the rest of its
batch is stored).

Losses reach every flow they concern. When it forms batches, the recorder thread notes which
run each new run belongs to (a task run to its flow run, a subflow run to its parent task or
flow run; forgotten once the run's final state is acknowledged). A dropped record's run is
kept with that chain of owners, so `flush(runs=[flow_run_id])` (a top-level flow's end) raises
`RecordingError` naming exactly the lost runs of that flow, its task runs and its subflows,
whichever flush was waiting when they were dropped. A plain `flush()` raises for every loss not
yet reported to a plain flush or claimed by a flow's. At most `_MAX_LOST` lost runs are kept.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol
from uuid import UUID

import grpc

from ..errors import FlushTimeout, RecordingError
from . import codec
from .client import Target
from .committer import GroupCommitter
from .log_buffer import LogBuffer
from .log_records import LogRecord
from .records import (
    Batch,
    BatchResult,
    FlowRunRecord,
    Heartbeat,
    Rejection,
    StateRecord,
    TaskRunRecord,
    Unstorable,
)
from .rules import TERMINAL
from .service import method_path

log = logging.getLogger(__name__)

#: Records waiting for commit beyond which producers pause (`behind`): about 2,500 task runs,
#: a quarter of a second of the writer's work on this 2-core machine.
BEHIND_RECORDS = 10_000

OnAck = Callable[[int, int, BatchResult], None]
OnError = Callable[..., None]  # (gen, exc, seq=None)
#: Errors that mean "the server refused this batch": re-sending it would fail again.
_POISON = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED})
#: How long one batch may take to be committed and acknowledged before it is sent again.
SEND_TIMEOUT = 30.0
#: Lost runs kept for the flows that have not yet asked about them (oldest forgotten first),
#: and runs whose owner is remembered (a safety net: a run is forgotten at its final state).
_MAX_LOST = 100_000
_MAX_OWNED = 1_000_000


class _Sink(Protocol):
    """Where batches go: `open` a stream, `send` batches on it, `close` it."""

    def open(self, gen: int, on_ack: OnAck, on_error: OnError) -> None: ...
    def send(self, seq: int, batch: Batch) -> None: ...
    def close(self) -> None: ...


class _LocalSink:
    """Hand batches to an in-process group committer: the embedded server's fast path."""

    def __init__(self, committer: GroupCommitter) -> None:
        self._committer = committer
        self._gen = 0
        self._on_ack: OnAck | None = None
        self._on_error: OnError | None = None

    def open(self, gen: int, on_ack: OnAck, on_error: OnError) -> None:
        self._gen, self._on_ack, self._on_error = gen, on_ack, on_error

    def send(self, seq: int, batch: Batch) -> None:
        gen, on_ack, on_error = self._gen, self._on_ack, self._on_error

        def done(fut: Any) -> None:
            exc = fut.exception()
            on_error(gen, exc, seq) if exc else on_ack(gen, seq, fut.result())  # type: ignore[misc]

        self._committer.submit(batch).add_done_callback(done)

    def close(self) -> None:
        pass


class _GrpcSink:
    """Each batch is one unary `RecordBatch` call, acknowledged by its reply.

    A server thread is held only while the batch commits, never while this process idles: a
    stream per client pinned one of the server's threads for the client's whole life, and the
    129th recording process found the server full. Batches go one at a time (the recorder's
    window is 1 for this sink), so a run's records still commit in the order they were made.
    A record msgpack cannot carry is left out of its batch and named in that batch's ack.
    """

    window = 1

    def __init__(self, target: Target) -> None:
        self._channel = target.channel()
        self._metadata = target.metadata()
        self._method = self._channel.unary_unary(method_path("RecordBatch"))
        self._gen = 0
        self._on_ack: OnAck | None = None
        self._on_error: OnError | None = None

    def open(self, gen: int, on_ack: OnAck, on_error: OnError) -> None:
        self._gen, self._on_ack, self._on_error = gen, on_ack, on_error

    def send(self, seq: int, batch: Batch) -> None:
        gen, on_ack, on_error = self._gen, self._on_ack, self._on_error
        assert on_ack is not None and on_error is not None
        left_out: tuple[Unstorable, ...] = ()
        try:
            body = codec.batch_body(seq, batch)
        except Exception as exc:  # a record msgpack cannot carry: send the batch without it
            rest, left_out = batch.without_unstorable()
            try:
                if not left_out:
                    raise
                body = codec.batch_body(seq, rest)
            except Exception:  # nothing to blame, or still unencodable: fail this batch alone
                on_error(gen, exc, seq)
                return
        call = self._method.future(body, metadata=self._metadata, timeout=SEND_TIMEOUT)

        def done(call: Any) -> None:
            try:
                acked_seq, result = codec.decode_ack(call.result())
            except grpc.RpcError as exc:  # poison codes fail the batch; others re-send it
                on_error(gen, exc, seq if exc.code() in _POISON else None)
            except Exception as exc:  # a malformed ack: treat like a broken connection
                on_error(gen, exc)
            else:
                if left_out:
                    result = BatchResult(result.applied, result.rejections, result.unstored + left_out)
                on_ack(gen, acked_seq, result)

        call.add_done_callback(done)

    def close(self) -> None:
        """Nothing to close: calls in flight answer into a generation the recorder left."""

    def shutdown(self) -> None:
        self._channel.close()


@dataclass(slots=True)
class _Pending:
    seq: int
    batch: Batch
    created: float
    sent: bool = False


@dataclass(slots=True)
class _Marker:
    """A flush() waiting for every batch up to `target` to be resolved."""

    event: threading.Event = field(default_factory=threading.Event)
    target: int = -1
    error: RecordingError | None = None
    #: Report only the losses of these runs and the runs they own; None: every new loss.
    runs: frozenset[UUID] | None = None


@dataclass(frozen=True, slots=True)
class RecorderStatistics:
    queued: int
    unacknowledged_batches: int
    acknowledged_batches: int
    applied_states: int
    rejected_states: int
    dropped_runs: int
    connected: bool
    #: Log records dropped (buffer full, or their batch lost); see `log_buffer.py`.
    dropped_logs: int = 0


class Recorder:
    """Buffers run records and ships them in batches; see the module docstring."""

    def __init__(
        self,
        sink: _Sink,
        *,
        interval: float = 0.005,
        grace: float = 30.0,
        max_buffered: int = 1_000_000,
        max_batch: int = 10_000,
        window: int | None = None,
        max_logs_buffered: int = 100_000,
    ) -> None:
        self._sink = sink
        self._logs = LogBuffer(max_logs_buffered)
        self._interval, self._grace = interval, grace
        # Batches in flight at once: what the sink allows (1 keeps a unary sink in order), else 4.
        if window is None:
            window = getattr(sink, "window", 4)
        self._max_buffered, self._max_batch, self._window = max_buffered, max_batch, window
        self._fifo: deque[Any] = deque()
        self._append = self._fifo.append
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._pending: dict[int, _Pending] = {}  # by seq, oldest first
        self._markers: deque[_Marker] = deque()
        self._next_seq, self._resolved, self._gen = 0, -1, 0
        self._open, self._retry_at, self._backoff = False, 0.0, 0.05
        self._down_since: float | None = None  # when the server was last seen going away
        self._unreported: set[UUID] = set()  # lost runs not yet reported to a plain flush()
        self._reasons: list[str] = []  # why records were lost since the last plain flush
        # run -> the run that owns it (None: a top-level flow run); see the module docstring
        self._owner: dict[UUID, UUID | None] = {}
        # lost run -> (why, the run and its owners, innermost first), until a flow claims it
        self._lost: dict[UUID, tuple[str, tuple[UUID, ...]]] = {}
        self._rejections: deque[Rejection] = deque(maxlen=1000)
        self._counts = {"acked": 0, "applied": 0, "rejected": 0, "dropped": 0}
        self._stop = self._closed = False
        self._asleep = False
        self._thread = threading.Thread(target=self._run, name="headwater-recorder", daemon=True)
        self._thread.start()

    # -- the hot path: O(1), never blocks, any thread --------------------------------------

    # Each appends, then wakes the background thread only if it went to sleep for lack of
    # work (see `_run`): one attribute read on the busy path.

    def flow_run_created(self, rec: FlowRunRecord) -> None:
        self._append(rec)
        if self._asleep:
            self._wake.set()

    def task_run_created(self, rec: TaskRunRecord) -> None:
        self._append(rec)
        if self._asleep:
            self._wake.set()

    def state_changed(self, rec: StateRecord) -> None:
        self._append(rec)
        if self._asleep:
            self._wake.set()

    def heartbeat(self, flow_run_id: UUID) -> None:
        self._append(Heartbeat(flow_run_id))
        if self._asleep:
            self._wake.set()

    def log(self, record: LogRecord, keep: bool = False) -> None:
        """Buffer one log line of a run; dropped and counted when the log buffer is full.
        `keep`: a line that says how the run went, with a reserve beyond the bound."""
        self._logs.append(record, keep)
        if self._asleep:
            self._wake.set()

    # -- waiting ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = None, *, runs: Iterable[UUID] | None = None) -> None:
        """Block until everything enqueued before this call is committed on the server.

        Raises `RecordingError` naming runs whose records were dropped (server away longer
        than the grace period, buffer overflow, or refused), or `FlushTimeout`. With `runs`,
        only the losses of those runs and of the runs they own (a flow run's task runs and
        subflows, theirs in turn), however long ago and whoever flushed since; without, every
        loss not reported to a plain flush before and not claimed by a flush with `runs`.
        """
        if self._closed:
            return
        if threading.current_thread() is self._thread:
            raise RuntimeError("flush() called from the recorder's own thread")
        marker = _Marker(runs=None if runs is None else frozenset(runs))
        self._logs.tell_at_next_take()
        self._append(marker)
        self._wake.set()
        if not marker.event.wait(timeout):
            raise FlushTimeout(f"flush timed out after {timeout} s", self._unacknowledged_runs())
        if marker.error is not None:
            raise marker.error

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the background thread and close the connection."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = self._stop = True
            self._wake.set()
            self._thread.join(5)
            getattr(self._sink, "shutdown", self._sink.close)()

    def rejections(self) -> list[Rejection]:
        """The most recent state changes the server refused (illegal transitions)."""
        return list(self._rejections)

    def statistics(self) -> RecorderStatistics:
        c = self._counts
        return RecorderStatistics(
            queued=len(self._fifo), unacknowledged_batches=len(self._pending),
            acknowledged_batches=c["acked"], applied_states=c["applied"],
            rejected_states=c["rejected"], dropped_runs=c["dropped"],
            connected=self._open and self._down_since is None, dropped_logs=self._logs.dropped,
        )

    def behind(self) -> bool:
        """Whether more than `BEHIND_RECORDS` records wait to be committed while the server is
        up: the producers' cue to let the recorder and committer catch up (`RunReporter`),
        so what is left for a flow's final flush stays small. Never while the server is
        away: then buffering is the point."""
        if self._down_since is not None:
            return False
        waiting = len(self._fifo)
        if waiting > BEHIND_RECORDS:
            return True
        for p in list(self._pending.values()):  # list() of a dict view is atomic under the GIL
            waiting += len(p.batch)
        return waiting > BEHIND_RECORDS

    def _unacknowledged_runs(self) -> set[UUID]:
        ids: set[UUID] = set()
        for p in list(self._pending.values()):  # list() of a dict view is atomic under the GIL
            ids |= p.batch.run_ids()
        for item in list(self._fifo):
            run_id = getattr(item, "run_id", None) or getattr(item, "id", None)
            if run_id is not None:
                ids.add(run_id)
        return ids

    # -- the background thread -------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop:
            if self._idle():
                # Nothing buffered, sent or awaited: sleep until a producer, an ack or a
                # flush wakes us, instead of polling every `interval` forever (a process
                # that had run one flow spent ~4% of a core here). `_asleep` is set before
                # the last look at the FIFO, and producers read it after appending, so one
                # of the two always sees the other.
                self._asleep = True
                if self._idle():
                    self._wake.wait()
                self._asleep = False
            else:
                self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._step(time.monotonic())
            except Exception:  # never let the recorder thread die silently
                log.exception("recorder step failed; will retry")

    def _idle(self) -> bool:
        return (
            not (self._fifo or self._pending or self._markers or self._logs.waiting())
            and self._events.empty()
        )

    def _step(self, now: float) -> None:
        self._handle_events(now)
        # Up and busy: let records pile into the next (bigger) batch, but never past one
        # batch's worth, so everything buffered counts against `max_buffered`.
        waiting = any(not p.sent for p in self._pending.values())
        if self._down_since is not None or not waiting or len(self._fifo) >= self._max_batch:
            self._drain(now)
        self._expire(now)
        self._send(now)
        self._complete_markers()

    def _drain(self, now: float) -> None:
        # This pass takes the records in the FIFO now and, first, every log line buffered
        # now: a line written before one of those records is among them, so a run's lines
        # are committed before its final state (a follower stops at that state).
        todo = len(self._fifo)
        for logs in self._logs.take(now, self._max_batch):
            self._pending[self._next_seq] = _Pending(self._next_seq, Batch(logs=logs), now)
            self._next_seq += 1
        rows: tuple[list[Any], ...] = ([], [], [], [])
        count, pop, owner = 0, self._fifo.popleft, self._owner
        kinds = {FlowRunRecord: 0, TaskRunRecord: 1, StateRecord: 2, Heartbeat: 3}
        for _ in range(todo):
            item = pop()
            kind = kinds.get(type(item))
            if kind is None:  # a flush marker: it waits for everything formed so far
                self._form(rows, now)
                rows, count = ([], [], [], []), 0
                item.target = self._next_seq - 1
                self._markers.append(item)
                continue
            rows[kind].append(item.flow_run_id if kind == 3 else item)
            count += 1
            if kind == 1:  # who owns each new run, so a loss finds its flow (module docstring)
                owner[item.id] = item.flow_run_id
            elif kind == 0:
                owner[item.id] = item.parent_task_run_id or item.parent_flow_run_id
            if count >= self._max_batch:
                self._form(rows, now)
                rows, count = ([], [], [], []), 0
        self._form(rows, now)
        if len(owner) > _MAX_OWNED:  # runs whose final state never came: drop the oldest half
            for run_id in list(islice(owner, len(owner) // 2)):
                del owner[run_id]

    def _form(self, rows: tuple[list[Any], ...], now: float) -> None:
        if not any(rows):
            return
        flows, tasks, states, beats = rows
        batch = Batch(tuple(flows), tuple(tasks), tuple(states), tuple(dict.fromkeys(beats)))
        self._pending[self._next_seq] = _Pending(self._next_seq, batch, now)
        self._next_seq += 1

    def _send(self, now: float) -> None:
        if not any(not p.sent for p in self._pending.values()):
            return
        if not self._open:
            if now < self._retry_at:
                return
            self._gen += 1
            self._sink.open(self._gen, self._on_ack, self._on_error)
            self._open = True
            for p in self._pending.values():
                p.sent = False  # a new stream: re-send everything not yet acknowledged
        inflight = sum(1 for p in self._pending.values() if p.sent)
        for p in list(self._pending.values()):
            if inflight >= self._window:
                break
            if not p.sent:
                self._sink.send(p.seq, p.batch)
                p.sent, inflight = True, inflight + 1

    # -- acknowledgements and failures ------------------------------------------------------

    def _on_ack(self, gen: int, seq: int, result: BatchResult) -> None:
        self._events.put(("ack", gen, seq, result))
        self._wake.set()

    def _on_error(self, gen: int, exc: BaseException, seq: int | None = None) -> None:
        self._events.put(("error", gen, seq, exc))
        self._wake.set()

    def _handle_events(self, now: float) -> None:
        while True:
            try:
                kind, gen, seq, payload = self._events.get_nowait()
            except queue.Empty:
                return
            if gen != self._gen:
                continue  # from a stream we already gave up on
            if kind == "ack":
                self._acked(seq, payload)
            else:
                self._errored(now, seq, payload)

    def _acked(self, seq: int, result: BatchResult) -> None:
        p = self._pending.pop(seq, None)
        self._down_since, self._backoff = None, 0.05
        if result.unstored:
            reason = f"state service could not store a record: {result.unstored[0].reason}"
            log.error("%d record(s) not stored; first: %s", len(result.unstored), reason)
            self._lose({u.run_id for u in result.unstored}, reason)
        if p is not None:
            self._forget_finished(p.batch)
            if p.batch.logs:
                self._logs.resolved(len(p.batch.logs))
        self._counts["acked"] += 1
        self._counts["applied"] += result.applied
        if result.rejections:
            self._counts["rejected"] += len(result.rejections)
            self._rejections.extend(result.rejections)
            log.warning("state service refused %d state(s): %s", len(result.rejections),
                        result.rejections[0].reason)

    def _errored(self, now: float, seq: int | None, exc: BaseException) -> None:
        code = exc.code() if isinstance(exc, grpc.RpcError) else None
        if seq is not None or code in _POISON:
            # The server refused a batch outright; re-sending it would fail the same way.
            first = seq if seq is not None else next((p.seq for p in self._pending.values() if p.sent), None)
            if first is not None and first in self._pending:
                self._fail(self._pending[first], f"state service refused a batch: {exc}")
            if seq is not None:
                return
        self._open = False
        self._sink.close()
        for p in self._pending.values():
            p.sent = False  # whatever that stream carried without an ack must go again
        if self._down_since is None and code not in _POISON:
            self._down_since = now
            log.warning("state service unreachable (%s); buffering", code or exc)
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, 1.0)

    def _expire(self, now: float) -> None:
        # Log lines have their own bound (`LogBuffer`): they never push out a state.
        buffered = sum(len(p.batch) - len(p.batch.logs) for p in self._pending.values())
        for p in list(self._pending.values()):
            if buffered > self._max_buffered and len(p.batch) > len(p.batch.logs):
                buffered -= len(p.batch)
                self._fail(p, f"recorder buffer over {self._max_buffered} records")
            elif self._down_since is not None and now - max(self._down_since, p.created) > self._grace:
                self._fail(p, f"state service unreachable for more than {self._grace:g} s")

    def _fail(self, p: _Pending, reason: str) -> None:
        del self._pending[p.seq]
        batch = p.batch
        if batch.logs:  # counted and told, never a loss of the runs (module docstring)
            self._logs.lost(batch.logs, reason)
            if len(batch) == len(batch.logs):
                return
        runs = {r.id for r in batch.flows} | {r.id for r in batch.tasks}
        runs |= {s.run_id for s in batch.states}  # a lost heartbeat loses no record
        log.error("dropped %d records of %d runs: %s", len(batch), len(runs), reason)
        self._lose(runs, reason)
        self._forget_finished(batch)

    def _lose(self, runs: set[UUID], reason: str) -> None:
        """Remember lost runs with their owners, for the flushes that will ask about them."""
        self._counts["dropped"] += len(runs)
        if reason not in self._reasons and len(self._reasons) < 100:
            self._reasons.append(reason)
        lost, owner = self._lost, self._owner
        for run_id in runs:
            if len(self._unreported) < _MAX_LOST:
                self._unreported.add(run_id)
            chain, up = [run_id], owner.get(run_id)
            while up is not None and len(chain) < 64:  # 64: a guard, not a real depth
                chain.append(up)
                up = owner.get(up)
            lost.pop(run_id, None)  # re-inserted last: the oldest go first below
            lost[run_id] = (reason, tuple(chain))
        if len(lost) > _MAX_LOST:
            for run_id in list(islice(lost, len(lost) - _MAX_LOST)):
                del lost[run_id]

    def _forget_finished(self, batch: Batch) -> None:
        """A run whose final state is resolved makes no more records: forget its owner."""
        owner = self._owner
        for s in batch.states:
            if s.type in TERMINAL:
                owner.pop(s.run_id, None)

    def _claim(self, runs: frozenset[UUID]) -> RecordingError | None:
        """The losses of `runs` and the runs they own, reported to this flush and forgotten."""
        if not self._lost:
            return None
        mine = {
            run_id: reason for run_id, (reason, chain) in self._lost.items()
            if not runs.isdisjoint(chain)
        }
        if not mine:
            return None
        for run_id in mine:
            del self._lost[run_id]
            self._unreported.discard(run_id)
        return RecordingError(f"records were not committed ({_reasons(mine.values())})", mine)

    def _complete_markers(self) -> None:
        resolved = next(iter(self._pending)) - 1 if self._pending else self._next_seq - 1
        done = []
        while self._markers and self._markers[0].target <= resolved:
            done.append(self._markers.popleft())
        if not done:
            return
        error = None
        if any(marker.runs is None for marker in done) and self._unreported:
            reason = _reasons(self._reasons) if self._reasons else "not recorded"
            error = RecordingError(f"records were not committed ({reason})", self._unreported)
            self._unreported = set()
            self._reasons = []
        for marker in done:
            marker.error = error if marker.runs is None else self._claim(marker.runs)
            marker.event.set()


def _reasons(reasons: Iterable[str], most: int = 3) -> str:
    """Distinct reasons, in the order they happened, the first `most` of them."""
    distinct = list(dict.fromkeys(reasons))
    more = f"; and {len(distinct) - most} more" if len(distinct) > most else ""
    return "; ".join(distinct[:most]) + more
