"""The gRPC service: the method table, authentication, and error-to-status mapping.

Handlers are registered with `grpc.method_handlers_generic_handler` (no protoc): every method
takes and returns raw msgpack bytes, decoded and validated by `codec.py`. Reads go straight
to storage (any thread); writes go through the group committer, and a reply is sent only
after COMMIT. Recorder batches arrive as unary `RecordBatch` calls, each answered with an
ack once committed: a server thread is held only while a batch commits, so thousands of
recording clients cost nothing while they idle. The older bidi `Record` stream (a thread held
for the stream's whole life) is still served for clients that use it.

The result cache's calls (`Cache*`) are served by `cache_service.CacheService`, over the
store in the service's home, and the concurrency slot calls (limits, `Acquire`, `Renew`,
`Release`, the `SlotGrants` stream) by `slot_service.SlotService`, over the same database,
both with the same authorization and error mapping. Run logs (`ReadLogs`, the `FollowLogs`
stream) are read by `log_service.LogService`, which the committer wakes after each commit.

Every handler runs inside `_guarded`, so a bad request gets a status naming what is wrong
(via `errors.status_code_for`, the one mapping) and never disturbs other callers.
"""

from __future__ import annotations

import hmac
import logging
import queue
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc

from . import codec
from . import models as m
from .cache_service import CACHE_WRITES, CacheService
from .committer import GroupCommitter
from .control_service import CONTROL_WRITES, ControlService
from .dbfile import storage_error
from .automation_service import AUTOMATION_WRITES, AutomationService
from .block_service import BLOCK_WRITES, BlockService
from .deploy_service import DEPLOY_WRITES, DeployService
from .event_service import EVENT_WRITES, EventService
from .log_service import LogService
from .pause_service import PAUSE_WRITES, PauseService
from .errors import RunNotFound, ServiceUnavailable, TransitionRejected, Unauthenticated, is_sent_as_is, status_code_for
from . import rules
from .records import Batch, BatchResult, StateRecord
from .slot_service import SLOT_WRITES, SlotService
from .storage import Storage

log = logging.getLogger(__name__)

SERVICE_NAME = "headwater.v1.StateService"
COMMIT_TIMEOUT = 30.0
#: Call metadata naming one logical write across its retries (see `_Replies`).
REQUEST_ID_KEY = "x-headwater-request-id"
_WRITES = frozenset({"CreateFlowRun", "CreateTaskRun", "SetState", "Heartbeat"})

Handler = Callable[[bytes], dict[str, Any]]


def method_path(name: str) -> str:
    """The full gRPC path of a method, as clients call it."""
    return f"/{SERVICE_NAME}/{name}"


class StateService:
    """The servicer: one method per RPC, each `bytes -> msgpack-able dict`."""

    def __init__(
        self,
        storage: Storage,
        committer: GroupCommitter,
        token: str | None,
        *,
        home: Path | None = None,
        synchronous: str = "FULL",
        doorbell: bool = False,
    ) -> None:
        self._replies = _Replies()
        self._storage = storage
        self._committer = committer
        self._expected = f"Bearer {token}".encode() if token else None
        # The result cache lives beside the database unless told otherwise.
        self.cache = CacheService(home if home is not None else storage.path.parent)
        self.slots = SlotService(storage.path, synchronous=synchronous)
        self.logs = LogService(storage)
        committer.add_listener(self.logs.notify)
        self.control = ControlService(
            storage.path, lambda ident: storage.resolve_id("flow", ident), synchronous=synchronous,
            doorbell=doorbell,
        )
        self.pauses = PauseService(
            storage.path, lambda ident: storage.resolve_id("flow", ident), self.control, synchronous=synchronous,
        )
        # A standalone server (no doorbell) always runs the scheduler; see DeployService.
        self.deployments = DeployService(storage.path, synchronous=synchronous, always_schedule=not doorbell)
        self.deployments.after_cancel = self.control.deliver_new
        self.blocks = BlockService(storage.path, synchronous=synchronous)
        self.events = EventService(storage.path, synchronous=synchronous)
        committer.add_listener(self.events.notify)  # a committed state is an event
        self.automations = AutomationService(
            storage.path, self.events.store, self.deployments.store, self.control.store, self.blocks.store,
            synchronous=synchronous,
            hosting=(lambda: True) if not doorbell else self.deployments.hosting, after_cancel=self.control.deliver_new,
            sole_runner=not doorbell,
        )
        committer.add_listener(self.automations.notify)
        self.events.on_emit.append(self.automations.notify)
        self.control.listeners.append(self.deployments.dispatch)

    def close(self) -> None:
        """Close what the service opened itself (the result cache, if a call opened it, and
        the slot ledger's timer, streams and database connection)."""
        self.cache.close()
        self.slots.close()
        self.control.close()
        self.pauses.close()
        self.deployments.close()
        self.blocks.close()
        self.automations.close()
        self.events.close()

    def generic_handler(self) -> grpc.GenericRpcHandler:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(handle) for name, handle in self.unary_handlers().items()
        }
        handlers["SlotGrants"] = grpc.unary_stream_rpc_method_handler(self.slot_grants)
        handlers["FollowLogs"] = grpc.unary_stream_rpc_method_handler(self.follow_logs)
        handlers["ControlMessages"] = grpc.unary_stream_rpc_method_handler(self.control_messages)
        handlers["WorkerRuns"] = grpc.unary_stream_rpc_method_handler(self.worker_runs)
        handlers["FollowEvents"] = grpc.unary_stream_rpc_method_handler(self.follow_events)
        handlers["Record"] = grpc.stream_stream_rpc_method_handler(self.record)
        handlers["RecordBatch"] = grpc.unary_unary_rpc_method_handler(self.record_batch)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def unary_handlers(self) -> dict[str, Callable[[bytes, grpc.ServicerContext], bytes]]:
        """Every unary method as `(request bytes, context) -> reply bytes`, with the checks and
        error mapping a call through gRPC gets: what the server serves, and what a client in
        the server's own process calls directly (`local_calls.py`)."""
        unary: dict[str, Handler] = {
            "CreateFlowRun": self.create_flow_run,
            "CreateTaskRun": self.create_task_run,
            "SetState": self.set_state,
            "ReadFlowRun": self.read_flow_run,
            "ReadTaskRun": self.read_task_run,
            "ListFlowRuns": self.list_flow_runs,
            "ListTaskRuns": self.list_task_runs,
            "ReadHistory": self.read_history,
            "Heartbeat": self.heartbeat,
            "Ping": self.ping,
        }
        unary.update(self.cache.handlers())
        unary.update(self.slots.handlers())
        unary.update(self.logs.handlers())
        unary.update(self.control.handlers())
        unary.update(self.pauses.handlers())
        unary.update(self.deployments.handlers())
        unary.update(self.blocks.handlers())
        unary.update(self.events.handlers())
        unary.update(self.automations.handlers())
        writes = (_WRITES | CACHE_WRITES | SLOT_WRITES | CONTROL_WRITES | PAUSE_WRITES | DEPLOY_WRITES | BLOCK_WRITES
                  | EVENT_WRITES | AUTOMATION_WRITES)  # fmt: skip
        return {name: self._unary(fn, write=name in writes) for name, fn in unary.items()}

    # -- plumbing --------------------------------------------------------------------------

    def _authorize(self, context: grpc.ServicerContext) -> None:
        if self._expected is None:
            return
        given = b""
        for key, value in context.invocation_metadata():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
        # Constant-time so the token cannot be guessed byte by byte from response times.
        if not hmac.compare_digest(given, self._expected):
            reason = "missing bearer token" if not given else "invalid bearer token"
            raise Unauthenticated(f"{reason}: send metadata 'authorization: Bearer <token>'")

    def _unary(self, fn: Handler, *, write: bool) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        replies = self._replies

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            with _guarded(context):
                self._authorize(context)
                request_id = _request_id(context) if write else None
                try:
                    if request_id is None:
                        return codec.pack(fn(request))
                    return replies.answer(request_id, lambda: codec.pack(fn(request)))
                except sqlite3.Error as exc:  # a read of a damaged database, say
                    raise storage_error(self._storage.path, exc) from None
            raise AssertionError("unreachable")  # _guarded aborts on every error

        return handle

    def _commit(self, batch: Batch) -> BatchResult:
        try:
            return self._committer.apply(batch, timeout=COMMIT_TIMEOUT)
        except TimeoutError:
            raise ServiceUnavailable("storage is busy; commit timed out, retry") from None

    # -- writes ----------------------------------------------------------------------------

    def create_flow_run(self, data: bytes) -> dict[str, Any]:
        rec = codec.flow_run_record(codec.decode(m.FlowRunIn, data))
        self._commit(Batch(flows=(rec,)))
        return {}

    def create_task_run(self, data: bytes) -> dict[str, Any]:
        rec = codec.task_run_record(codec.decode(m.TaskRunIn, data))
        self._commit(Batch(tasks=(rec,)))
        return {}

    def set_state(self, data: bytes) -> dict[str, Any]:
        rec = codec.state_record(codec.decode(m.StateIn, data))
        self._refuse_forced_cancel(rec)
        result = self._commit(Batch(states=(rec,)))
        if result.rejections:
            raise TransitionRejected(result.rejections[0].reason)
        return {"duplicate": result.applied == 0}

    def _refuse_forced_cancel(self, rec: StateRecord) -> None:
        """A live flow run becomes CANCELLED only by the cancel path, which tells its process
        to stop (Prefect #17482: a forced state left the flow running, shown Cancelled). Its
        process's own report of the end it reached arrives by `RecordBatch`, not here."""
        if rec.run_kind != "flow" or rec.type != rules.CANCELLED:
            return
        try:
            current = self._storage.read_flow_run(rec.run_id).state_type
        except RunNotFound:
            return
        if current is not None and current != rules.CANCELLING and not rules.is_terminal(current):
            raise TransitionRejected(
                f"flow run {rec.run_id} is {current}: a state change cannot mark it CANCELLED while "
                f"its process runs on; cancel it with `headwater runs cancel {rec.run_id}` (or "
                f"cancel_flow_run), which stops it"
            )

    def heartbeat(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.HeartbeatIn, data)
        self._commit(Batch(heartbeats=(codec.uuid_of(body.flow_run_id),)))
        return {}

    def record_batch(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        """One recorder batch: committed, then acknowledged (`codec.ack_body`)."""
        with _guarded(context):
            self._authorize(context)
            seq, batch = codec.decode_batch(data)
            return codec.ack_body(seq, self._commit(batch))
        raise AssertionError("unreachable")  # _guarded aborts on every error

    def record(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        """The recorder stream: each batch is committed, then acknowledged, in order.

        A reader thread decodes and submits batch k+1 while batch k commits, so decoding
        (one core) overlaps with SQLite (the other); acks still leave in sequence order.
        """
        with _guarded(context):
            self._authorize(context)
            inbox: queue.SimpleQueue[tuple[int, Future[BatchResult]] | BaseException | None]
            inbox = queue.SimpleQueue()
            threading.Thread(
                target=self._read_batches, args=(requests, inbox), daemon=True,
                name="headwater-record-reader",
            ).start()
            while (item := inbox.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                seq, fut = item
                try:
                    result = fut.result(COMMIT_TIMEOUT)
                except TimeoutError:
                    raise ServiceUnavailable("storage is busy; commit timed out, retry") from None
                yield codec.ack_body(seq, result)

    def slot_grants(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """The server stream a client process's slot grants are pushed on (`SlotService.grants`)."""
        with _guarded(context):
            self._authorize(context)
            yield from self.slots.grants(request, context)

    def control_messages(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """The server stream of a process's control messages (`ControlService.stream`)."""
        with _guarded(context):
            self._authorize(context)
            yield from self.control.stream(request, context)

    def worker_runs(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """A worker's server stream of runs to start (`DeployService.stream`)."""
        with _guarded(context):
            self._authorize(context)
            yield from self.deployments.stream(request, context)

    def follow_events(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """The server stream of new events (`EventService.follow`)."""
        with _guarded(context):
            self._authorize(context)
            yield from self.events.follow(request, context)

    def follow_logs(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """The server stream of a run's new log lines (`LogService.follow`)."""
        with _guarded(context):
            self._authorize(context)
            yield from self.logs.follow(request, context)

    def _read_batches(self, requests: Iterator[bytes], inbox: queue.SimpleQueue[Any]) -> None:
        try:
            for data in requests:
                seq, batch = codec.decode_batch(data)
                inbox.put((seq, self._committer.submit(batch)))
            inbox.put(None)
        except Exception as exc:  # a bad batch, or the client went away
            inbox.put(exc)

    # -- reads -----------------------------------------------------------------------------

    def ping(self, data: bytes) -> dict[str, Any]:
        """Nothing but the token check every call makes: clients call it before they record."""
        return {}

    def read_flow_run(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.RunRefIn, data)
        return codec.flow_run_info_body(self._storage.read_flow_run(body.id))

    def read_task_run(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.RunRefIn, data)
        return codec.task_run_info_body(self._storage.read_task_run(body.id))

    def list_flow_runs(self, data: bytes) -> dict[str, Any]:
        flt = codec.run_filter(codec.decode(m.ListFlowRunsIn, data))
        return {"runs": [codec.flow_run_info_body(r) for r in self._storage.list_flow_runs(flt)]}

    def list_task_runs(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.RunIdIn, data)
        runs = self._storage.list_task_runs(codec.uuid_of(body.run_id))
        return {"runs": [codec.task_run_info_body(r) for r in runs]}

    def read_history(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.RunIdIn, data)
        states = self._storage.read_history(codec.uuid_of(body.run_id))
        return {"states": [codec.state_info_body(s) for s in states]}


class _guarded:
    """Turn any exception inside a handler into `context.abort` with the mapped status."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._context = context

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        if is_sent_as_is(exc):
            message = str(exc)
        elif _is_abort(exc):
            return  # already aborted by grpc itself
        else:
            log.exception("unexpected error in a state service handler")
            message = f"internal error: {type(exc).__name__}"
        self._context.abort(status_code_for(exc), message[:4000])


def _request_id(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata():
        if key == REQUEST_ID_KEY:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


class _Replies:
    """The replies to recent writes, by request id: a retried write gets its original reply.

    A client whose reply was lost after the write committed retries with the same request id
    (Ray's retryable RPCs work the same way). Without this a retried `set_state` was answered
    "duplicate" although it was this very call that recorded the state. A retry arriving while
    the original is still being committed waits for it instead of running twice. Failures are
    not kept: a retry of a refused write is decided afresh. The last `size` replies are kept,
    in memory: a retry after a server restart is still idempotent (transition ids), though it
    is then answered "duplicate".
    """

    def __init__(self, size: int = 65_536) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._running: dict[str, Future[bytes]] = {}

    def answer(self, request_id: str, compute: Callable[[], bytes]) -> bytes:
        with self._lock:
            reply = self._done.get(request_id)
            if reply is not None:
                return reply
            running = self._running.get(request_id)
            if running is None:
                running = self._running[request_id] = Future()
                owner = True
            else:
                owner = False
        if not owner:
            return running.result(COMMIT_TIMEOUT)
        try:
            reply = compute()
        except BaseException as exc:
            with self._lock:
                del self._running[request_id]
            running.set_exception(exc)
            raise
        with self._lock:
            del self._running[request_id]
            self._done[request_id] = reply
            if len(self._done) > self._size:
                self._done.popitem(last=False)
        running.set_result(reply)
        return reply


def _is_abort(exc: BaseException) -> bool:
    # grpc's sync server signals `context.abort` with a bare Exception subclass of its own.
    return type(exc).__module__.startswith("grpc")
