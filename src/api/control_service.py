"""The control channel of the state service: one server stream per client process, over which
the service pushes control messages (`control_store.py`) for the flow runs that process owns.

A process opens `ControlMessages` once (subscriber id, the runs it owns, the last seq it acted
on) and keeps it open; each flow run it starts is added with `ControlWatch` (dropped again when
it ends). A message is pushed the moment it is committed: by `CancelFlowRun` on this server, by
the doorbell when the CLI wrote it straight into the database (`doorbell.py`), or, as a safety
net, by the sweeper's `deliver_new` (at most a second later). Each push is one item on the
subscriber's queue, which its stream's thread is blocked on: no polling, and an idle stream
costs one parked server thread plus gRPC keepalive pings.

Exactly once: a message stays pending until the process acknowledges it (`ControlAck`, after
acting); a stream that broke is reopened and gets every pending message of the process's runs
again, whatever seq the client acted on last (a lower seq for another of its runs may still be
pending: one written straight into the database waits for the sweeper, while a later one from
`CancelFlowRun` went out at once); the client drops seqs it has seen. The sweeper, too, looks
for every pending message of a connected process's runs, not only those after the last seq it
saw. A process that never comes back
leaves its messages to their deadlines (`ControlStore.settle_due`, from the server's sweeper).

Message kinds: "cancel" (body: reason, deadline), "resume", "reject" and "pause_timeout" (`pause_store.py`). The envelope (seq, flow run, kind, body) is
the same for every kind, so "resume" adds a kind and a body, not a new stream.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import grpc

from . import codec
from . import models as m
from .control_store import ControlMessage, ControlStore
from .doorbell import Doorbell

log = logging.getLogger(__name__)

Handler = Callable[[bytes], dict[str, Any]]
#: How long a process's runs stay addressed to it after its stream broke (it reconnects
#: within its backoff, re-sending them; after this they are forgotten, their rows remain).
SUBSCRIBER_GRACE = 60.0
CONTROL_WRITES = frozenset({"CancelFlowRun", "ControlAck"})


class _Subscriber:
    __slots__ = ("id", "outbox", "runs", "connected", "gone_since", "sent")

    def __init__(self, subscriber_id: str) -> None:
        self.id = subscriber_id
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.runs: set[UUID] = set()
        self.connected = False
        self.gone_since = time.time()
        self.sent: set[int] = set()  # seqs pushed on the current stream


class ControlService:
    """Subscribers and their runs (memory), messages (`ControlStore`, durable)."""

    def __init__(
        self, path: Path, resolve_id: Callable[[str], UUID], *, synchronous: str = "FULL",
        doorbell: bool = False,
    ) -> None:
        """`resolve_id` turns a flow run id or unique prefix into its id; `doorbell`: listen
        for rings from other processes (the embedded server, see `doorbell.py`)."""
        self.store = ControlStore(path, synchronous=synchronous, beside_storage=True)
        self._resolve_id = resolve_id
        self._lock = threading.Lock()
        self._subscribers: dict[str, _Subscriber] = {}
        self._owner: dict[UUID, _Subscriber] = {}
        self._ending = False
        #: Called after a doorbell's ring and after a cancel here (the dispatcher tells the
        #: worker that started a cancelled run); each must be quick and must not raise.
        self.listeners: list[Callable[[], None]] = []
        self._doorbell = Doorbell(path, self._rung) if doorbell else None

    def handlers(self) -> dict[str, Handler]:
        return {"ControlWatch": self.watch, "ControlAck": self.ack, "CancelFlowRun": self.cancel}

    def end_streams(self) -> None:
        """End every open stream, and any that starts from now on (the server is stopping)."""
        with self._lock:
            self._ending = True
            for sub in self._subscribers.values():
                sub.outbox.put(None)

    def close(self) -> None:
        if self._doorbell is not None:
            self._doorbell.close()
        self.end_streams()
        self.store.close()

    # -- calls -----------------------------------------------------------------------------

    def cancel(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.CancelIn, data)
        run_id = self._resolve_id(body.id)
        outcome = self.store.request_cancel(run_id, deadline_seconds=body.deadline_seconds, by=body.by)
        self._deliver(outcome.messages)
        self._tell_listeners()
        return {
            "flow_run_id": run_id.bytes, "cancelled": [r.bytes for r in outcome.cancelled],
            "already": outcome.already, "deadline": outcome.deadline,
        }

    def watch(self, data: bytes) -> dict[str, Any]:
        """Address a flow run's messages to a process (or stop, when it ended there)."""
        body = codec.decode(m.ControlWatchIn, data)
        run_id = codec.uuid_of(body.flow_run_id)
        with self._lock:
            sub = self._subscribers.get(body.subscriber_id)
            if sub is None:  # its stream is not up yet: the run waits for it
                sub = self._subscribers[body.subscriber_id] = _Subscriber(body.subscriber_id)
            if body.stop:
                sub.runs.discard(run_id)
                if self._owner.get(run_id) is sub:
                    del self._owner[run_id]
                return {}
            sub.runs.add(run_id)
            self._owner[run_id] = sub
            connected = sub.connected
        if connected:  # a cancel may have come before the run was watched
            self._deliver(self.store.pending([run_id]))
        return {}

    def ack(self, data: bytes) -> dict[str, Any]:
        self.store.ack(codec.decode(m.ControlAckIn, data).seqs)
        return {}

    def stream(self, data: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """`ControlMessages`: every pending message of the process's runs (all of them:
        `after_seq` is not trusted to cover them, see the module docstring), then each new one
        as it is committed, until the client or the server goes."""
        body = codec.decode(m.ControlStreamIn, data)
        runs = {codec.uuid_of(r) for r in body.flow_run_ids}
        with self._lock:
            old = self._subscribers.get(body.subscriber_id)
            sub = _Subscriber(body.subscriber_id)
            if old is not None:
                old.outbox.put(None)  # a stream the process gave up on
                runs |= old.runs
            sub.runs, sub.connected = runs, True
            self._subscribers[body.subscriber_id] = sub
            for run_id in runs:
                self._owner[run_id] = sub
        if not context.add_callback(lambda: sub.outbox.put(None)) or self._ending:
            sub.outbox.put(None)  # the call ended before it got here: the callback never runs
        self._deliver(self.store.pending(sorted(runs)))
        try:
            while (item := sub.outbox.get()) is not None:
                yield item
        finally:
            with self._lock:
                if self._subscribers.get(body.subscriber_id) is sub:
                    sub.connected, sub.gone_since = False, time.time()

    # -- delivery and the timer ------------------------------------------------------------

    def deliver_new(self) -> None:
        """Push messages committed by someone else (the CLI, another server on the file):
        every pending one of a connected process's runs that its stream did not carry yet."""
        with self._lock:
            owned = [run for run, sub in self._owner.items() if sub.connected]
        if owned:
            self._deliver(self.store.pending(owned))

    def _rung(self) -> None:
        self.deliver_new()
        self._tell_listeners()

    def _tell_listeners(self) -> None:
        for listener in self.listeners:
            try:
                listener()
            except Exception:  # another part's bug must not stop the control channel
                log.exception("control listener failed")

    def sweep(self, now: float | None = None) -> list[UUID]:
        """The sweeper's turn: deliver what arrived unannounced, end the cancelled runs whose
        deadline passed, forget processes gone too long. Returns the runs ended here."""
        now = time.time() if now is None else now
        self.deliver_new()
        ended = self.store.settle_due(now)
        with self._lock:
            for sub in [s for s in self._subscribers.values() if not s.connected]:
                if now - sub.gone_since > SUBSCRIBER_GRACE:
                    del self._subscribers[sub.id]
                    for run_id in sub.runs:
                        if self._owner.get(run_id) is sub:
                            del self._owner[run_id]
        return ended

    def _deliver(self, messages: list[ControlMessage] | tuple[ControlMessage, ...]) -> None:
        with self._lock:
            for msg in messages:
                sub = self._owner.get(msg.flow_run_id)
                if sub is None or not sub.connected or msg.seq in sub.sent:
                    continue
                sub.sent.add(msg.seq)
                sub.outbox.put(codec.pack({
                    "seq": msg.seq, "flow_run_id": msg.flow_run_id.bytes, "kind": msg.kind, "body": msg.body,
                }))
