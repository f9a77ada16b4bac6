"""The event calls of the state service: `EmitEvents` (a batch, idempotent by event id),
`ReadEvents` (the newest that match, or those after a cursor) and the `FollowEvents` stream,
which pushes each event as it is committed (the committer and every emit wake it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import grpc
from pydantic import Field, StrictStr

from . import codec
from .commit_signal import CommitSignal
from .deploy_service import _json, _plain
from .event_store import Cursor, Event, EventStore, check_event, matches
from .errors import InvalidPayload
from .models import Timestamp, Uuid16, Wire

Handler = Callable[[bytes], dict[str, Any]]
EVENT_WRITES = frozenset({"EmitEvents"})
Pattern = Annotated[StrictStr, Field(min_length=1, max_length=1024)]
CursorText = Annotated[StrictStr, Field(max_length=64, pattern=r"^\d*(:\d*)?$")]
Labels = Annotated[dict[StrictStr, StrictStr], Field(max_length=64)]


class EventIn(Wire):
    id: Uuid16
    event: Annotated[StrictStr, Field(min_length=1, max_length=1024)]
    occurred: Timestamp
    resource: Labels
    related: Annotated[list[Labels], Field(max_length=64)] = []
    payload: Annotated[StrictStr, Field(max_length=256 * 1024)] = "{}"  # JSON text


class EmitEventsIn(Wire):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=5_000)]


class ReadEventsIn(Wire):
    name: Pattern | None = None
    resource: Pattern | None = None
    since: Timestamp | None = None
    after: CursorText | None = None
    limit: Annotated[int, Field(strict=True, ge=1, le=10_000)] = 100


def event_from_wire(body: EventIn) -> Event:
    import json

    try:
        payload = json.loads(body.payload)
    except ValueError as exc:
        raise InvalidPayload(f"event {body.event!r}: its payload is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise InvalidPayload(f"event {body.event!r}: a payload is a JSON object")
    event = Event(codec.uuid_of(body.id), body.event, body.occurred, dict(body.resource), [dict(r) for r in body.related], payload)
    check_event(event)
    return event


class EventService:
    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.store = EventStore(path, synchronous=synchronous, beside_storage=True)
        self._signal = CommitSignal()
        #: Told after each emit (the automation loop looks at once); quick, never raising.
        self.on_emit: list[Callable[[], None]] = []

    def handlers(self) -> dict[str, Handler]:
        return {"EmitEvents": self.emit, "ReadEvents": self.read}

    def notify(self) -> None:
        """Something was committed (a state, an event): wake the followers."""
        self._signal.notify()

    def end_streams(self) -> None:
        self._signal.end()

    def close(self) -> None:
        self.end_streams()
        self.store.close()

    def emit(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(EmitEventsIn, data, max_bytes=32 * 1024 * 1024)
        stored = self.store.emit([event_from_wire(e) for e in body.events])
        self.notify()
        for listener in self.on_emit:
            listener()
        return _json({"stored": stored})

    def read(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(ReadEventsIn, data)
        if body.after is not None:
            events, cursor = self.store.after(Cursor.parse(body.after), body.limit)
            return _json({"events": [e for e in events if matches(e, body.name, body.resource)], "cursor": cursor.text()})
        since = body.since if body.since is not None else time.time() - 3600
        return _json({"events": self.store.recent(since, body.limit, body.name, body.resource), "cursor": None})

    def follow(self, data: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """`FollowEvents`: from `after` (default: now), every new event that matches, as it is
        committed, until the client or the server goes."""
        body = codec.decode(ReadEventsIn, data)
        signal = self._signal
        gone = signal.watch_client(context)
        if gone is None:
            return
        cursor = Cursor.parse(body.after) if body.after else self._now()
        while not gone.is_set() and not signal.ending:
            generation = signal.generation()
            events, cursor = self.store.after(cursor, 500)
            chosen = [e for e in events if matches(e, body.name, body.resource)]
            if chosen or events:
                if chosen:
                    yield codec.pack({"body": _dumps({"events": chosen, "cursor": cursor.text()})})
                continue
            signal.wait(generation, gone, 1.0)  # a commit of another process on the file wakes no one here

    def _now(self) -> Cursor:
        rows = self.store._read("SELECT (SELECT max(seq) FROM states), (SELECT max(seq) FROM events)")
        return Cursor(int(rows[0][0] or 0), int(rows[0][1] or 0))


def _dumps(value: Any) -> str:
    import json

    return json.dumps(_plain(value))
