"""`emit_event`: report an event from any code, in any process, inside a flow or not.

Events are batched like states: `emit_event` checks the event (a clear error for a missing
resource id or a payload over 64 KiB), puts it on this process's buffer and returns; a
thread sends what accumulated as one `EmitEvents` call. Nothing is dropped silently: a full
buffer (`MAX_BUFFERED`) makes `emit_event` wait for room (back-pressure) up to `WAIT_FOR_ROOM`
seconds, and only then drops the event and counts it; a secret this process loaded (a block's
secret field) is masked in the payload, as in run logs; the count goes to the service as a
`headwater.events.dropped` event of its own, and at exit a count that could not be sent is
printed on stderr. `flush_events()` waits until what was emitted so far is stored; it runs at
interpreter exit too. Ids make a re-sent batch (after a broken call) store nothing twice.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections import deque
from datetime import datetime
from typing import Any

from ..api.event_store import RESOURCE_ID, Event, check_event
from ..api.errors import InvalidPayload
from ..runtime.secret_masking import mask, masking_active

log = logging.getLogger("headwater.events")

MAX_BUFFERED = 10_000
WAIT_FOR_ROOM = 5.0
_BATCH = 1_000


def emit_event(
    event: str, resource: dict[str, str], payload: dict[str, Any] | None = None,
    related: list[dict[str, str]] | None = None, occurred: datetime | float | None = None, id: uuid.UUID | None = None,
) -> Event:
    """Report `event` about `resource` (labels; `headwater.resource.id` is required)."""
    when = occurred.timestamp() if isinstance(occurred, datetime) else (time.time() if occurred is None else occurred)
    body = dict(payload or {})
    if masking_active():  # a secret this process loaded never leaves it in an event
        body = _masked(body)
    made = Event(id or uuid.uuid4(), event, when, dict(resource), [dict(r) for r in related or ()], body)
    try:
        check_event(made)
    except InvalidPayload as exc:
        raise ValueError(str(exc)) from None
    _emitter().put(made)
    return made


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def flush_events(timeout: float = 30.0) -> bool:
    """Wait until every event emitted here so far is stored; False if time ran out."""
    emitter = _current
    return True if emitter is None or emitter.pid != os.getpid() else emitter.flush(timeout)


class _Emitter:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self._queue: deque[Event] = deque()
        self._cond = threading.Condition()
        self._sent = 0  # events taken and stored
        self._put = 0
        self.dropped = 0
        self._reported_drops = 0
        threading.Thread(target=self._run, name="headwater-events", daemon=True).start()

    def put(self, event: Event) -> None:
        with self._cond:
            give_up = time.monotonic() + WAIT_FOR_ROOM
            while len(self._queue) >= MAX_BUFFERED:
                left = give_up - time.monotonic()
                if left <= 0:
                    self.dropped += 1
                    return
                self._cond.wait(left)
            self._queue.append(event)
            self._put += 1
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        with self._cond:
            target = self._put
            give_up = time.monotonic() + timeout
            while self._sent < target:
                left = give_up - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _run(self) -> None:
        from ..api.event_client import EventClient
        from ..deploy.connection import service_target

        client: EventClient | None = None
        target = None
        while True:
            with self._cond:
                while not self._queue and self.dropped == self._reported_drops:
                    self._cond.wait()
                batch = [self._queue[i] for i in range(min(_BATCH, len(self._queue)))]
                drops = self.dropped - self._reported_drops
            if drops:
                batch.append(Event(uuid.uuid4(), "headwater.events.dropped", time.time(),
                                   {RESOURCE_ID: f"headwater.process.{os.getpid()}"}, [], {"dropped": drops}))  # fmt: skip
            try:
                where = service_target()  # read each time: a process may be pointed elsewhere
                if client is None or where != target:
                    if client is not None:
                        client.close()
                    client, target = EventClient(where, retry_for=60.0), where
                client.emit(batch)
            except Exception as exc:  # the service is away past the retries: keep them, try again
                log.warning("could not send %d events (%s); retrying", len(batch), exc)
                time.sleep(1.0)
                continue
            with self._cond:
                taken = len(batch) - (1 if drops else 0)
                for _ in range(taken):
                    self._queue.popleft()
                self._sent += taken
                self._reported_drops += drops
                self._cond.notify_all()


_current: _Emitter | None = None
_lock = threading.Lock()


def _emitter() -> _Emitter:
    global _current
    emitter = _current
    if emitter is not None and emitter.pid == os.getpid():
        return emitter
    with _lock:
        if _current is None or _current.pid != os.getpid():
            from ..deploy.connection import service_target

            # Reach the service first: on the embedded default that starts this process's
            # server, whose exit hook stops it. Hooks run last-registered first, so the
            # flush registered after it runs while the server still takes calls.
            service_target()
            _current = _Emitter()
            threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
        return _current


def _at_exit() -> None:
    emitter = _current
    if emitter is None or emitter.pid != os.getpid():
        return
    if not emitter.flush(10.0):
        print(f"headwater: {len(emitter._queue)} events could not be stored before exit", file=sys.stderr)
    if emitter.dropped > emitter._reported_drops:
        print(f"headwater: {emitter.dropped - emitter._reported_drops} events were dropped (buffer full)", file=sys.stderr)
