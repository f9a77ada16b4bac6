"""A process's end of the control channel: one `ControlMessages` stream to the state service
for every flow run this process owns, and the calls that go with it (see `control_service.py`).

`control_client(target)` is the process's client for a service (one per URL, made again in a
forked child). Its stream starts with the first `watch`, on a daemon thread that blocks on the
stream between messages: no polling, no timer. Each message is handed to the handler its run
was watched with, at most once per process (seqs acted on are remembered), then acknowledged.
When the stream breaks (the server restarts, the network drops) the thread reconnects with a
growing pause (50 ms to 2 s), sending the runs it owns, and the service sends every message
for them not acknowledged yet, whatever seq came before; those it acted on already are dropped
here and acknowledged again.

Handlers run on the stream's thread: they must be quick (set a flag, queue work), as the
runtime's are.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import grpc

from . import codec
from . import models as m
from .client import Target, UnaryCaller, _Call
from .control_store import CANCEL_DEADLINE, ControlMessage
from .service import method_path

log = logging.getLogger(__name__)
_UNWATCH_TIMEOUT = 2.0

ControlHandler = Callable[[ControlMessage], None]
_RECONNECT_FIRST, _RECONNECT_MOST = 0.05, 2.0


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """What `cancel_flow_run` did: the run, the runs moved to CANCELLING (its live subflows
    too), whether a cancel was underway already, and when the service gives up waiting."""

    flow_run_id: UUID
    cancelled: tuple[UUID, ...]
    already: bool
    deadline: float


def _cancel_request(out: m.CancelOut) -> CancelRequest:
    return CancelRequest(
        codec.uuid_of(out.flow_run_id), tuple(codec.uuid_of(r) for r in out.cancelled), out.already, out.deadline
    )


def _none(out: m.Empty) -> None:
    return None


CANCEL_FLOW_RUN = _Call("CancelFlowRun", m.CancelOut, _cancel_request, write=True)
CONTROL_WATCH = _Call("ControlWatch", m.Empty, _none)
CONTROL_ACK = _Call("ControlAck", m.Empty, _none, write=True)


class ControlClient(UnaryCaller):
    """The control calls, and (once something is watched) this process's stream."""

    def __init__(self, target: Target | str | None, *, timeout: float = 10.0, retry_for: float = 30.0) -> None:
        super().__init__(target, timeout=timeout, retry_for=retry_for)
        self.subscriber_id = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._handlers: dict[UUID, ControlHandler] = {}
        self._acted: set[int] = set()
        self._last_acted = 0
        self._thread: threading.Thread | None = None
        self._call_in_flight: Any = None
        self._closed = False
        self.connected = threading.Event()  # set while the stream is open (tests, benchmarks)

    def cancel_flow_run(
        self, ident: UUID | str, *, deadline_seconds: float = CANCEL_DEADLINE, by: str | None = None
    ) -> CancelRequest:
        body: dict[str, Any] = {"id": str(ident), "deadline_seconds": float(deadline_seconds)}
        if by:
            body["by"] = by
        return self._call(CANCEL_FLOW_RUN, body)

    def watch(self, flow_run_id: UUID, handler: ControlHandler) -> None:
        """Hand `flow_run_id`'s control messages to `handler` from now on (and any already
        waiting for it)."""
        with self._lock:
            self._handlers[flow_run_id] = handler
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="headwater-control", daemon=True)
                self._thread.start()
        self._call(CONTROL_WATCH, {"subscriber_id": self.subscriber_id, "flow_run_id": flow_run_id.bytes})

    def unwatch(self, flow_run_id: UUID) -> None:
        with self._lock:
            if self._handlers.pop(flow_run_id, None) is None:
                return
        body = {"subscriber_id": self.subscriber_id, "flow_run_id": flow_run_id.bytes, "stop": True}
        try:
            # One short try: it only tidies up, and retrying a server that went away held the
            # end of every flow for 30 s (the server forgets a subscriber whose stream ended).
            self._call(CONTROL_WATCH, body, once=_UNWATCH_TIMEOUT)
        except Exception as exc:  # the run ended; a message for it would find no handler anyway
            log.debug("could not stop watching flow run %s: %s", flow_run_id, exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            call = self._call_in_flight
        if call is not None:
            call.cancel()
        super().close()

    # -- the stream ------------------------------------------------------------------------

    def _listen(self) -> None:
        pause = _RECONNECT_FIRST
        open_stream = self._channel.unary_stream(method_path("ControlMessages"))
        while True:
            with self._lock:
                if self._closed:
                    return
                request = codec.pack({
                    "subscriber_id": self.subscriber_id, "flow_run_ids": [r.bytes for r in self._handlers],
                    "after_seq": self._last_acted,
                })
                call = self._call_in_flight = open_stream(request, metadata=self._metadata)
            try:
                self.connected.set()
                for data in call:
                    pause = _RECONNECT_FIRST  # it worked: the next break starts over
                    self._act(codec.decode(m.ControlMessageOut, data))
            except grpc.RpcError as exc:
                log.debug("control stream broke (%s); reconnecting", exc.code() if hasattr(exc, "code") else exc)
            except Exception:
                log.exception("control stream failed; reconnecting")
            finally:
                self.connected.clear()
            with self._lock:
                if self._closed:
                    return
            threading.Event().wait(pause)
            pause = min(pause * 2, _RECONNECT_MOST)

    def _act(self, out: m.ControlMessageOut) -> None:
        message = ControlMessage(out.seq, codec.uuid_of(out.flow_run_id), out.kind, dict(out.body), 0.0,
                                 out.body.get("deadline"))
        with self._lock:
            fresh = message.seq not in self._acted
            self._acted.add(message.seq)
            handler = self._handlers.get(message.flow_run_id)
        if fresh and handler is not None:
            try:
                handler(message)
            except Exception:
                log.exception("control message %s for flow run %s failed", message.kind, message.flow_run_id)
        with self._lock:
            self._last_acted = max(self._last_acted, message.seq)
        try:
            self._call(CONTROL_ACK, {"seqs": [message.seq]})
        except Exception as exc:  # resent after a reconnect, then dropped here as seen
            log.debug("could not acknowledge control message %d: %s", message.seq, exc)


# By the whole target, token included: an embedded server started after another stopped may
# be given the same port, and a client of the old one (its token, its direct calls to a
# stopped server) must not serve the new one.
_clients: dict[Target, ControlClient] = {}
_clients_lock = threading.Lock()
_owner_pid = os.getpid()


def control_client(target: Target) -> ControlClient:
    """This process's control client for the service at `target`."""
    global _owner_pid
    with _clients_lock:
        if _owner_pid != os.getpid():  # a forked child: the parent's stream thread is not here
            _clients.clear()
            _owner_pid = os.getpid()
        client = _clients.get(target)
        if client is None:
            client = _clients[target] = ControlClient(target)
            if len(_clients) == 1:
                # Before the interpreter joins executor threads at exit: a server in this
                # process serves our stream on one of them, until we close it (as slots do).
                threading._register_atexit(close_control_clients)  # type: ignore[attr-defined]
        return client


def close_control_clients() -> None:
    """Close this process's control clients: their streams end."""
    with _clients_lock:
        mine = list(_clients.values()) if _owner_pid == os.getpid() else []
        _clients.clear()
    for client in mine:
        try:
            client.close()
        except Exception as exc:  # the process is ending; nothing more to tell
            log.debug("closing a control client failed: %s", exc)
