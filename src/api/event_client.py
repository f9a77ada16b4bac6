"""The event calls, from a client (`event_service.py`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from . import codec
from .client import Target, UnaryCaller, _Call
from .deploy_models import JsonOut
from .event_store import Event
from .service import method_path


def event_from(d: dict[str, Any]) -> Event:
    return Event(UUID(d["id"]), d["event"], d["occurred"], d["resource"], d["related"], d["payload"])


def _call(method: str, write: bool = False) -> _Call[Any]:
    return _Call(method, JsonOut, lambda out: json.loads(out.body), write=write)


def event_body(event: Event) -> dict[str, Any]:
    return {"id": event.id.bytes, "event": event.event, "occurred": float(event.occurred), "resource": event.resource,
            "related": event.related, "payload": json.dumps(event.payload)}  # fmt: skip


class EventClient(UnaryCaller):
    def __init__(self, target: Target | str | None, *, timeout: float = 10.0, retry_for: float = 30.0) -> None:
        super().__init__(target, timeout=timeout, retry_for=retry_for)

    def emit(self, events: Sequence[Event]) -> int:
        """Store a batch; returns how many were new (a re-sent event is stored once)."""
        return int(self._call(_call("EmitEvents", True), {"events": [event_body(e) for e in events]})["stored"])

    def recent(self, *, since: float | None = None, name: str | None = None, resource: str | None = None,
               limit: int = 100) -> list[Event]:  # fmt: skip
        body: dict[str, Any] = {"limit": limit}
        for key, value in (("since", since), ("name", name), ("resource", resource)):
            if value is not None:
                body[key] = value
        return [event_from(d) for d in self._call(_call("ReadEvents"), body)["events"]]

    def follow(self, *, name: str | None = None, resource: str | None = None, after: str | None = None) -> Iterator[Event]:
        """Every new event that matches, as it is committed (an endless iterator)."""
        body = {k: v for k, v in (("name", name), ("resource", resource), ("after", after)) if v is not None}
        stream = self._channel.unary_stream(method_path("FollowEvents"))(codec.pack(body), metadata=self._metadata)
        for data in stream:
            for d in json.loads(codec.unpack(data)["body"])["events"]:
                yield event_from(d)
