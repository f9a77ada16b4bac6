"""`headwater events ls | emit | stream`: the event log (`api/event_store.py`), so a cron job,
an Airflow DAG or a shell script can report to headwater, and people can see what happened.
Registering imports only the standard library (`tests/cli/test_startup.py`)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from ._deploy_common import guarded, key_value, print_json

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def register(subparsers: Any) -> None:
    events = subparsers.add_parser("events", help="what happened: run state changes and emitted events")
    verbs = events.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("ls", help="recent events, newest first")
    ls.add_argument("--since", default="1h", metavar="SPAN", help="how far back: 30s, 15m, 1h, 2d (default 1h)")
    ls.add_argument("--limit", type=int, default=100, metavar="N")
    emit = verbs.add_parser("emit", help="report an event")
    emit.add_argument("name", metavar="NAME", help="e.g. sales.table.refreshed")
    emit.add_argument("--resource", action="append", type=key_value, required=True, metavar="LABEL=VALUE",
                      help="a label of the resource (repeat); headwater.resource.id is required, 'id=' is short for it")
    emit.add_argument("--related", action="append", default=[], metavar="ID", help="a related resource's id (repeat)")
    emit.add_argument("--payload", default="{}", metavar="JSON", help="a JSON object")
    stream = verbs.add_parser("stream", help="new events as they happen (until Ctrl-C)")
    for parser in (ls, stream):
        parser.add_argument("--name", metavar="PATTERN", help="event names, * as wildcard (headwater.flow-run.*)")
        parser.add_argument("--resource", metavar="PATTERN", help="resource ids, * as wildcard")
    for parser, handler in ((ls, list_events), (emit, emit_one), (stream, stream_events)):
        parser.add_argument("--json", action="store_true", help="print JSON (stream: one object per line)")
        parser.set_defaults(handler=guarded("events", handler))
    events.set_defaults(handler=lambda args: events.print_help() or 2)


def seconds(span: str) -> float:
    found = _SPAN.match(span.strip())
    if not found:
        raise ValueError(f"a span is a number and a unit (30s, 15m, 1h, 2d), not {span!r}")
    return float(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]


def _client() -> Any:
    from ..api.event_client import EventClient
    from ..deploy.connection import service_target

    return EventClient(service_target())


def _shape(event: Any) -> dict[str, Any]:
    from ._run_shapes import iso

    return {"id": str(event.id), "event": event.event, "occurred": iso(event.occurred), "resource": event.resource,
            "related": event.related, "payload": event.payload}  # fmt: skip


def _line(event: Any) -> str:
    from ._run_shapes import iso

    return f"{iso(event.occurred)}  {event.event}  {event.resource_id}"


def list_events(args: argparse.Namespace) -> int:
    with _client() as client:
        found = client.recent(since=time.time() - seconds(args.since), name=args.name, resource=args.resource,
                              limit=args.limit)  # fmt: skip
    if args.json:
        print_json([_shape(e) for e in found])
    else:
        for event in found:
            print(_line(event))
    return 0


def emit_one(args: argparse.Namespace) -> int:
    import uuid

    from ..api.event_store import RESOURCE_ID, Event, check_event

    resource = {(RESOURCE_ID if key == "id" else key): str(value) for key, value in args.resource}
    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        raise ValueError(f"--payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ValueError("--payload is a JSON object, e.g. '{\"rows\": 1200}'")
    event = Event(uuid.uuid4(), args.name, time.time(), resource, [{RESOURCE_ID: r} for r in args.related], payload)
    check_event(event)
    with _client() as client:
        client.emit([event])
    print_json(_shape(event)) if args.json else print(f"emitted {event.event} ({event.id})")
    return 0


def stream_events(args: argparse.Namespace) -> int:
    with _client() as client:
        try:
            for event in client.follow(name=args.name, resource=args.resource):
                print(json.dumps(_shape(event)) if args.json else _line(event), flush=True)
        except KeyboardInterrupt:
            print(file=sys.stderr)
    return 0
