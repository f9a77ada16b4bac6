"""`headwater db reset`: move a damaged database aside, so the next start begins a new one.

Only this command does it: headwater never replaces a database by itself. The damaged file is
kept, renamed `headwater.db.damaged-<time>` (with its -wal and -shm), for inspection or
repair. A database that reads as whole is left alone. Run it while no server or flow uses
that `HEADWATER_HOME`. The handler imports what it needs when it runs, so registering the verb
costs every other command nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="the local database")
    verbs = db.add_subparsers(dest="verb", metavar="VERB")
    reset = verbs.add_parser(
        "reset", help="move a damaged database aside (kept, renamed with a timestamp)"
    )
    reset.add_argument("--home", type=Path, default=None, help="default HEADWATER_HOME")
    reset.set_defaults(handler=reset_database)
    db.set_defaults(handler=lambda args: db.print_help() or 2)


def reset_database(args: argparse.Namespace) -> int:
    from ..api.dbfile import diagnose, move_aside
    from ..api.errors import StorageError
    from ..api.settings import DB_FILENAME, get_settings

    path = (args.home or get_settings().home).expanduser() / DB_FILENAME
    try:
        cause = diagnose(path)
        if cause is None:
            print(f"headwater db: {path} is not damaged (or absent); left as it is", file=sys.stderr)
            return 1
        aside = move_aside(path)
    except (StorageError, OSError) as exc:
        print(f"headwater db: {exc}", file=sys.stderr)
        return 1
    print(f"moved the damaged database {path} ({cause}) aside to {aside}; the next start "
          f"begins a new database")
    return 0
