"""`headwater cache ls | stats | clear | explain`: look at and prune the result cache.

Every verb works on `api.open_cache_store()`: the state service's cache when
`HEADWATER_API_URL` is set (the directory itself when this home holds that same store), else
the cache under `HEADWATER_HOME`. `--json` prints machine-readable output (times ISO 8601
UTC); otherwise rich tables, with task names shown inert as `headwater runs` shows run names.
Imports happen inside the handlers, so `headwater --version` does not pay for them.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api.cache_client import RemoteStore
    from ..cache.entries import Entry
    from ..cache.store import LocalStore

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """`30s`, `15m`, `12h`, `7d` or `2w` in seconds; argparse shows the error of anything else."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write a number and a unit, like 30s, 15m, 12h, 7d or 2w"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def register(subparsers: Any) -> None:
    cache = subparsers.add_parser("cache", help="look at and prune the result cache")
    verbs = cache.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("ls", help="list cache entries, newest first")
    ls.add_argument("--task", help="only entries of this task")
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    ls.set_defaults(handler=_guard(list_entries))
    stats = verbs.add_parser("stats", help="entries, bytes, hits and misses")
    stats.add_argument("--json", action="store_true", help="print a JSON object")
    stats.set_defaults(handler=_guard(show_stats))
    clear = verbs.add_parser("clear", help="delete entries (all, of a task, or older than a while)")
    clear.add_argument("--task", help="only entries of this task")
    clear.add_argument(
        "--older-than", type=parse_duration, metavar="DURATION",
        help="only entries created longer ago than this, e.g. 30s, 15m, 12h, 7d",
    )
    clear.add_argument("--json", action="store_true", help="print a JSON object")
    clear.set_defaults(handler=_guard(clear_entries))
    explain = verbs.add_parser("explain", help="why a task run hit or missed the cache")
    explain.add_argument("run_id", metavar="RUN_ID", help="task run id, or a unique prefix of it")
    explain.add_argument("--json", action="store_true", help="print a JSON object")
    explain.set_defaults(handler=_guard(explain_run))
    cache.set_defaults(handler=lambda args: cache.print_help() or 2)


def _guard(verb: Callable[[argparse.Namespace, LocalStore | RemoteStore], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from ..api.cache_client import open_cache_store
        from ..api.errors import StateServiceError
        from ..errors import CacheStoreError

        try:
            store = open_cache_store()
            try:
                return verb(args, store)
            finally:
                store.close()
        except (StateServiceError, CacheStoreError, ValueError) as exc:
            print(f"headwater cache: {exc}", file=sys.stderr)
            return 1

    return run


# -- verbs -----------------------------------------------------------------------------------


def list_entries(args: argparse.Namespace, store: LocalStore | RemoteStore) -> int:
    from rich.table import Table

    from ._text import console, inert

    found = store.entries_of(args.task) if args.task else list(store.entries())
    found.sort(key=lambda e: (-e.created, e.key))
    if args.json:
        _print_json([_entry_json(e) for e in found])
        return 0
    table = Table(title=f"cache entries ({len(found)})")
    for column in ("key", "task", "size", "created (UTC)", "expires (UTC)"):
        table.add_column(column)
    for e in found:
        table.add_row(e.key[:16], inert(e.task), _size(e.size), _short_time(e.created),
                      _short_time(e.expires) if e.expires is not None else "never")
    console().print(table)
    return 0


def show_stats(args: argparse.Namespace, store: LocalStore | RemoteStore) -> int:
    stats = store.stats()
    shaped = stats._asdict()
    if args.json:
        _print_json(shaped)
        return 0
    looked = stats.hits + stats.misses
    rate = f" ({100 * stats.hits / looked:.0f}% hits)" if looked else ""
    print(f"entries: {stats.entries}\nbytes:   {stats.bytes} ({_size(stats.bytes)})\n"
          f"hits:    {stats.hits}{rate}\nmisses:  {stats.misses}")
    return 0


def clear_entries(args: argparse.Namespace, store: LocalStore | RemoteStore) -> int:
    cleared = store.clear(task=args.task, older_than=args.older_than)
    if args.json:
        _print_json({"cleared": cleared})
    else:
        print(f"cleared {cleared} cache {'entry' if cleared == 1 else 'entries'}")
    return 0


def explain_run(args: argparse.Namespace, store: LocalStore | RemoteStore) -> int:
    from ..cache.explain import explain, render

    run_id, note = _note_of(store, args.run_id)
    current = siblings = None
    if note is not None and note.key is not None:
        current = store.lookup(note.key)
        siblings = store.entries_of(note.task)
    result = explain(run_id, note, current, siblings or [])
    if args.json:
        _print_json(_with_iso_times(result))
    elif note is None:
        print(f"headwater cache: {result['summary']}", file=sys.stderr)
    else:
        print(render(result))
    return 0 if note is not None else 1


def _with_iso_times(result: dict[str, Any]) -> dict[str, Any]:
    """`explain`'s answer with its times as ISO 8601 UTC, as every `--json` prints them."""
    from ._run_shapes import iso

    shaped = dict(result)
    if "at" in shaped:
        shaped["at"] = iso(shaped["at"])
    for part in ("entry", "nearest"):
        if shaped.get(part) is not None:
            shaped[part] = {**shaped[part], "created": iso(shaped[part]["created"]),
                            "expires": iso(shaped[part]["expires"])}
    return shaped


def _note_of(store: LocalStore | RemoteStore, given: str) -> tuple[str, Any]:
    """The run's note, by its full id, or by a prefix the run records resolve to one id."""
    note = store.note(given)
    if note is not None:
        return given, note
    full = _full_run_id(given)
    if full is None or full == given:
        return given, None
    return full, store.note(full)


def _full_run_id(given: str) -> str | None:
    """`given` as a full task run id: itself in canonical form, or the one run whose id starts
    with it in the run records (None when they cannot say; an ambiguous prefix is an error)."""
    import sqlite3
    from uuid import UUID

    from ..api.errors import AmbiguousRunId, StateServiceError
    from ._source import open_source

    try:
        return str(UUID(given))
    except ValueError:
        pass
    try:
        with open_source() as source:
            return str(source.read_task_run(given).id)
    except AmbiguousRunId:
        raise
    except (StateServiceError, sqlite3.Error, OSError):
        return None


# -- shaping ---------------------------------------------------------------------------------


def _entry_json(entry: Entry) -> dict[str, Any]:
    from ._run_shapes import iso

    return {
        "key": entry.key, "task": entry.task, "size": entry.size, "created": iso(entry.created),
        "expires": iso(entry.expires), "location": entry.location,
    }


def _print_json(value: Any) -> None:
    import json

    print(json.dumps(value, indent=2, default=str))


def _short_time(ts: float | None) -> str:
    from ._run_shapes import iso

    return (iso(ts) or "-")[:19].replace("T", " ")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
