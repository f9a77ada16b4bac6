"""Argument parsing and dispatch for the `headwater` command.

Each noun (`server`, `runs`, ...) registers its subcommands through a `register(subparsers)`
function in its own module, so adding a verb never touches this file's logic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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


def _registrars() -> list:  # type: ignore[type-arg]
    """The subcommand modules; each exposes `register(subparsers)`."""
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
