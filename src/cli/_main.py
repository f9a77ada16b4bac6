"""Argument parsing and dispatch for the `headwater` command.

Each noun (`server`, `runs`, ...) registers its subcommands through a `register(subparsers)`
function in its own module, so adding a verb never touches this file's logic. Registering
imports nothing heavy: a verb's handler imports what it needs when it runs, so
`headwater --version` costs only `import headwater`, and `runs ls` on the home's database
never loads the gRPC client, the pydantic models or the server (`tests/cli/test_startup.py`).

A reader that stops reading (`headwater runs ls --json | head -1`) ends the command quietly
with status 141: see `_closed_pipe`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

#: The status a shell reports for a process that SIGPIPE ended (128 + 13), as `yes | head` ends.
CLOSED_PIPE_STATUS = 141


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
    from . import _automations, _blocks, _cache, _concurrency, _db, _deployments, _events, _runs, _server, _variables, _workers

    return [_server.register, _runs.register, _cache.register, _concurrency.register, _db.register,
            _deployments.register, _workers.register, _variables.register, _blocks.register,
            _events.register, _automations.register]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        status = int(handler(args) or 0)
        sys.stdout.flush()  # what is still buffered fails to reach a closed pipe here, not at exit
    except BrokenPipeError:
        return _closed_pipe()
    return status


def _closed_pipe() -> int:
    """Whoever read our stdout has stopped: stop too, with no traceback, as Unix tools do.

    Python ignores SIGPIPE, so a write to a closed pipe raises `BrokenPipeError`. We do not
    restore SIGPIPE's default to die of it instead: Python's note on SIGPIPE (signal module
    docs) warns that this would also kill the process when a socket closes mid-write, and
    the CLI writes to gRPC sockets. As that note recommends, stdout is pointed at /dev/null,
    so the interpreter's final flush of what is still buffered cannot raise again. The status
    is 141 rather than the note's 1: 1 is what every headwater error returns, and 141 is what
    a shell reports for a Unix tool that a closed pipe ended, so a script can tell the two apart.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return CLOSED_PIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
