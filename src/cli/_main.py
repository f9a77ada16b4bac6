"""Argument parsing and dispatch for the `headwater` command.

Each noun (`server`, `runs`, ...) registers its subcommands through a `register(subparsers)`
function in its own module, so adding a verb never touches this file's logic. Registering
imports nothing heavy: a verb's handler imports what it needs when it runs, so
`headwater --version` costs only `import headwater`, and `runs ls` on the home's database
never loads the gRPC client, the pydantic models or the server (`tests/cli/test_startup.py`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="headwater", description="Headwater dataflow runtime.")
    parser.add_argument("--version", action="version", version=f"headwater {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    version = subparsers.add_parser("version", help="print the installed version")
    version.set_defaults(handler=lambda args: print(f"headwater {__version__}") or 0)
    for register in _registrars():
        register(subparsers)
    return parser


def _registrars() -> list[Callable[[Any], None]]:
    """The subcommand modules; each exposes `register(subparsers)` and imports only argparse
    and the standard library at module level."""
    from . import _cache, _concurrency, _db, _runs, _server

    return [_server.register, _runs.register, _cache.register, _concurrency.register, _db.register]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
