"""`headwater concurrency-limit create | ls | inspect | reset | delete`: the limits that
concurrency slots are taken from.

With `HEADWATER_API_URL` set, every verb asks that server (`SlotClient`). Otherwise it works on
the database under `HEADWATER_HOME` directly (`StoredLimits`): limits and leases are stored
there, and a server running on that home (a flow's embedded one) reads the change counter the
CLI bumps, so it applies a created, changed, reset or deleted limit before its next decision
(within a second for requests already waiting). The wait queue lives in a server's memory, so
`waiting` shows only through a server.

`--json` prints machine-readable output (times ISO 8601 UTC); otherwise plain lines and a
rich table, with names shown inert as `headwater runs` shows run names. Imports happen inside
the handlers, so `headwater --version` does not pay for them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api.slot_client import SlotClient
    from ..api.slot_records import LimitInfo
    from ..api.slot_store import StoredLimits

    Limits = SlotClient | StoredLimits


def register(subparsers: Any) -> None:
    limits = subparsers.add_parser("concurrency-limit", help="limits on tasks running at once, by tag")
    verbs = limits.add_subparsers(dest="verb", metavar="VERB")
    create = verbs.add_parser("create", help="create a limit, or change one's size")
    create.add_argument("name", metavar="NAME", help="the tag it limits, e.g. warehouse")
    create.add_argument("limit", metavar="N", type=int, help="slots: tasks tagged NAME at once")
    create.add_argument(
        "--slot-decay-per-second", type=float, default=0.0, metavar="X",
        help="make it a rate limit: used slots drain at X per second instead of on release",
    )
    ls = verbs.add_parser("ls", help="every limit with its active and waiting counts")
    inspect = verbs.add_parser("inspect", help="one limit: who holds its slots, since when")
    inspect.add_argument("name", metavar="NAME")
    reset = verbs.add_parser("reset", help="free every slot of a limit (its holders lose them)")
    reset.add_argument("name", metavar="NAME")
    delete = verbs.add_parser("delete", help="delete a limit (its tag is no longer limited)")
    delete.add_argument("name", metavar="NAME")
    for parser, verb in ((create, create_limit), (ls, list_limits), (inspect, inspect_limit),
                         (reset, reset_limit), (delete, delete_limit)):
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=_guard(verb))
    limits.set_defaults(handler=lambda args: limits.print_help() or 2)


@contextmanager
def open_limits() -> Iterator[Limits]:
    """The server's limits when `HEADWATER_API_URL` is set, else the home's database."""
    from ..api.settings import get_settings

    settings = get_settings()
    if settings.api_url:
        from ..api.slot_client import SlotClient

        with SlotClient(settings.api_url, retry_for=5.0) as client:
            yield client
    else:
        from ..api.slot_store import StoredLimits

        with StoredLimits(settings.db_path) as stored:
            yield stored


def _guard(verb: Callable[[argparse.Namespace, Limits], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from ..api.errors import StateServiceError

        try:
            with open_limits() as limits:
                return verb(args, limits)
        except (StateServiceError, ValueError) as exc:
            print(f"headwater concurrency-limit: {exc}", file=sys.stderr)
            return 1

    return run


# -- verbs -----------------------------------------------------------------------------------


def create_limit(args: argparse.Namespace, limits: Limits) -> int:
    info = limits.create_limit(args.name, args.limit, slot_decay_per_second=args.slot_decay_per_second)
    if args.json:
        _print_json(limit_json(info))
    else:
        kind = f"rate limit, draining {info.slot_decay_per_second:g}/s" if info.slot_decay_per_second else "concurrency limit"
        print(f"{info.name}: {info.limit} slots ({kind})")
    return 0


def list_limits(args: argparse.Namespace, limits: Limits) -> int:
    from rich.table import Table

    from ._text import console, inert

    found = limits.list_limits()
    if args.json:
        _print_json([limit_json(info, holders=False) for info in found])
        return 0
    table = Table(title=f"concurrency limits ({len(found)})")
    for column in ("name", "limit", "active", "waiting", "decay/s"):
        table.add_column(column)
    for info in found:
        table.add_row(inert(info.name), str(info.limit), str(info.active), str(info.waiting),
                      f"{info.slot_decay_per_second:g}" if info.slot_decay_per_second else "-")
    console().print(table)
    return 0


def inspect_limit(args: argparse.Namespace, limits: Limits) -> int:
    from ._text import console, inert

    info = limits.read_limit(args.name)
    if args.json:
        _print_json(limit_json(info))
        return 0
    decay = f", draining {info.slot_decay_per_second:g}/s" if info.slot_decay_per_second else ""
    out = console(soft_wrap=True)
    out.print(inert(f"{info.name}: {info.active} of {info.limit} slots active{decay}, "
                    f"{info.waiting} waiting"))
    for h in info.holders:
        run = f" (task run {h.task_run_id})" if h.task_run_id else ""
        out.print(inert(
            f"  {h.label}{run} on {h.host or '?'} pid {h.pid or '?'}: {h.occupy} slot(s) since "
            f"{_short_time(h.acquired_at)} UTC, lease {h.lease_id} expires {_short_time(h.expires_at)} UTC"
        ))
    return 0


def reset_limit(args: argparse.Namespace, limits: Limits) -> int:
    limits.reset_limit(args.name)
    if args.json:
        _print_json({"reset": args.name})
    else:
        print(f"{args.name}: every slot freed; its holders' renewals and releases are refused")
    return 0


def delete_limit(args: argparse.Namespace, limits: Limits) -> int:
    limits.delete_limit(args.name)
    if args.json:
        _print_json({"deleted": args.name})
    else:
        print(f"{args.name}: deleted; tasks tagged {args.name} are no longer limited")
    return 0


# -- shaping ---------------------------------------------------------------------------------


def limit_json(info: LimitInfo, *, holders: bool = True) -> dict[str, Any]:
    from ._run_shapes import iso

    shaped: dict[str, Any] = {
        "name": info.name, "limit": info.limit, "slot_decay_per_second": info.slot_decay_per_second,
        "active": info.active, "waiting": info.waiting, "created": iso(info.created),
    }
    if holders:
        shaped["holders"] = [
            {
                "lease_id": h.lease_id, "label": h.label,
                "task_run_id": str(h.task_run_id) if h.task_run_id else None,
                "flow_run_id": str(h.flow_run_id) if h.flow_run_id else None,
                "host": h.host, "pid": h.pid, "occupy": h.occupy,
                "acquired_at": iso(h.acquired_at), "expires_at": iso(h.expires_at),
            }
            for h in info.holders
        ]
    return shaped


def _print_json(value: Any) -> None:
    import json

    print(json.dumps(value, indent=2, default=str))


def _short_time(ts: float) -> str:
    from ._run_shapes import iso

    return (iso(ts) or "-")[:19].replace("T", " ")
