"""`headwater work-pool create | ls | inspect | pause | resume | set-limit | delete` and
`headwater worker start | ls`: the pools deployments are queued in, and the processes that
run them.

Every verb goes through the state service (`deploy.connection.deploy_client`): the server at
`HEADWATER_API_URL`, or on the embedded default this process's own service on
`HEADWATER_HOME`, which shares the home's database with every worker there. `--json` prints
one JSON document on stdout (times ISO 8601 UTC). Handlers import what they need when they
run, so registering these nouns costs other commands nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._deploy_common import guarded, pool_json, print_json, worker_json

if TYPE_CHECKING:
    from ..api.deploy_store import WorkPool


def register(subparsers: Any) -> None:
    _register_pools(subparsers)
    _register_workers(subparsers)


def _register_pools(subparsers: Any) -> None:
    pools = subparsers.add_parser("work-pool", help="the pools workers take deployments' runs from")
    verbs = pools.add_subparsers(dest="verb", metavar="VERB")
    create = verbs.add_parser("create", help="create a work pool")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--concurrency-limit", type=int, metavar="N", help="most runs of the pool at once")
    create.add_argument("--description", metavar="D")
    ls = verbs.add_parser("ls", help="every work pool")
    named: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
        "inspect": ("one work pool", inspect_pool),
        "pause": ("stop handing the pool's runs to workers (they stay queued)", pause_pool),
        "resume": ("hand the pool's runs to workers again", resume_pool),
        "delete": ("delete a work pool", delete_pool),
    }
    parsers: list[tuple[argparse.ArgumentParser, Callable[[argparse.Namespace], int]]] = [
        (create, create_pool), (ls, list_pools)]
    for verb, (help_text, handler) in named.items():
        parser = verbs.add_parser(verb, help=help_text)
        parser.add_argument("name", metavar="NAME")
        parsers.append((parser, handler))
    set_limit = verbs.add_parser("set-limit", help="change the pool's concurrency limit, or remove it")
    set_limit.add_argument("name", metavar="NAME")
    set_limit.add_argument("limit", metavar="N|none", type=_limit_or_none, help="most runs at once, or 'none'")
    parsers.append((set_limit, set_pool_limit))
    for parser, handler in parsers:
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=guarded("work-pool", handler))
    pools.set_defaults(handler=lambda args: pools.print_help() or 2)


def _register_workers(subparsers: Any) -> None:
    workers = subparsers.add_parser("worker", help="processes that run the flow runs of a work pool")
    verbs = workers.add_subparsers(dest="verb", metavar="VERB")
    start = verbs.add_parser("start", help="run a pool's flow runs, each in a fresh interpreter, "
                                           "until SIGINT/SIGTERM")
    start.add_argument("--pool", required=True, metavar="NAME", help="the work pool (it must exist)")
    start.add_argument("--limit", type=int, metavar="N", help="most runs at once in this worker")
    start.add_argument("--name", metavar="W", help="the worker's name (default POOL-HOST-PID)")
    start.set_defaults(handler=guarded("worker", start_worker))
    ls = verbs.add_parser("ls", help="workers the service knows, with their status and running runs")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=guarded("worker", list_workers))
    workers.set_defaults(handler=lambda args: workers.print_help() or 2)


def _limit_or_none(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'none', not {text!r}") from None


# -- work pools ------------------------------------------------------------------------------


def create_pool(args: argparse.Namespace) -> int:
    from ..deploy.connection import deploy_client

    with deploy_client() as client:
        pool = client.create_pool(args.name, concurrency_limit=args.concurrency_limit, description=args.description)
    return _print_pool(args, pool, "created")


def list_pools(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..deploy.connection import deploy_client
    from ._text import console, inert

    with deploy_client() as client:
        pools = client.list_pools()
    if args.json:
        print_json([pool_json(p) for p in pools])
        return 0
    table = Table(title=f"work pools ({len(pools)})")
    for column in ("name", "limit", "paused", "description"):
        table.add_column(column)
    for p in pools:
        limit = "-" if p.concurrency_limit is None else str(p.concurrency_limit)
        table.add_row(inert(p.name), limit, "yes" if p.paused else "no", inert(p.description or ""))
    console().print(table)
    return 0


def inspect_pool(args: argparse.Namespace) -> int:
    from ..deploy.connection import deploy_client

    with deploy_client() as client:
        pool = client.read_pool(args.name)
    return _print_pool(args, pool, None)


def pause_pool(args: argparse.Namespace) -> int:
    return _update_pool(args, "paused", paused=True)


def resume_pool(args: argparse.Namespace) -> int:
    return _update_pool(args, "resumed", paused=False)


def set_pool_limit(args: argparse.Namespace) -> int:
    if args.limit is None:
        return _update_pool(args, "limit removed", clear_limit=True)
    return _update_pool(args, f"limit set to {args.limit}", concurrency_limit=args.limit)


def delete_pool(args: argparse.Namespace) -> int:
    from ..deploy.connection import deploy_client

    with deploy_client() as client:
        client.delete_pool(args.name)
    if args.json:
        print_json({"deleted": args.name})
    else:
        print(f"work pool {args.name!r} deleted")
    return 0


def _update_pool(args: argparse.Namespace, what: str, **change: Any) -> int:
    from ..deploy.connection import deploy_client

    with deploy_client() as client:
        pool = client.update_pool(args.name, **change)
    return _print_pool(args, pool, what)


def _print_pool(args: argparse.Namespace, pool: WorkPool, what: str | None) -> int:
    if args.json:
        print_json(pool_json(pool))
        return 0
    limit = "no limit" if pool.concurrency_limit is None else f"limit {pool.concurrency_limit}"
    state = "paused" if pool.paused else "active"
    done = f" {what}:" if what else ":"
    about = f" ({pool.description})" if pool.description else ""
    print(f"work pool {pool.name!r}{done} {state}, {limit}{about}")
    return 0


# -- workers ---------------------------------------------------------------------------------


def start_worker(args: argparse.Namespace) -> int:
    from ..deploy.worker import Worker, serve_forever
    from ..runtime.logs import ensure_console_logging

    # The worker says it is ready, and what it starts, through the `headwater` logger; a
    # flow's console handler (stderr, INFO unless HEADWATER_LOG_LEVEL) shows it here too.
    ensure_console_logging()
    serve_forever(Worker(pool=args.pool, name=args.name, limit=args.limit))
    return 0


def list_workers(args: argparse.Namespace) -> int:
    import time

    from rich.table import Table

    from ..deploy.connection import deploy_client
    from ._text import console, inert

    with deploy_client() as client:
        workers = client.list_workers()
    now = time.time()
    shaped = [worker_json(w, now) for w in workers]
    if args.json:
        print_json(shaped)
        return 0
    table = Table(title=f"workers ({len(shaped)})")
    for column in ("name", "pool", "host/pid", "heartbeat", "status", "running"):
        table.add_column(column)
    for w in shaped:
        table.add_row(inert(w["name"]), inert(w["pool"]), f"{w['host'] or '?'}/{w['pid'] or '?'}",
                      f"{w['heartbeat_age_seconds']:.0f}s ago", w["status"], ", ".join(w["running"]) or "-")
    console().print(table)
    return 0
