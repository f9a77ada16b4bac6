"""`headwater server start`: run the standalone state service until SIGINT/SIGTERM.

Prints the URL clients should use (`grpc://HOST:PORT`, or `grpcs://` with TLS) on one line of
stdout once the server is listening; everything else goes to stderr. The handler imports the
server when it runs, so registering the verb costs every other command nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

#: `api.settings.DEFAULT_PORT`, restated so that registering this verb does not import the
#: settings (pydantic) for every command; `tests/cli/test_startup.py` ties the two.
_DEFAULT_PORT = 4200


def register(subparsers: Any) -> None:
    server = subparsers.add_parser("server", help="run the state service")
    verbs = server.add_subparsers(dest="verb", metavar="VERB")
    start = verbs.add_parser("start", help="serve until interrupted; prints the client URL")
    start.add_argument("--host", default="127.0.0.1", help="address to listen on")
    start.add_argument(
        "--port", type=int, default=None,
        help=f"port to listen on (default {_DEFAULT_PORT}); 0 picks a free port",
    )
    start.add_argument("--token", default=None, help="bearer token (default HEADWATER_API_TOKEN)")
    start.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate chain")
    start.add_argument("--tls-key", type=Path, default=None, help="PEM private key")
    start.add_argument("--home", type=Path, default=None, help="default HEADWATER_HOME")
    start.add_argument(
        "--heartbeat-timeout", type=float, default=None,
        help=(
            "seconds without a heartbeat before a RUNNING flow run is marked CRASHED "
            "(default HEADWATER_HEARTBEAT_TIMEOUT_SECONDS, 30); at least 3 times the clients' "
            "heartbeat interval (HEADWATER_HEARTBEAT_INTERVAL_SECONDS, 5), else refused"
        ),
    )
    start.set_defaults(handler=start_server)
    server.set_defaults(handler=lambda args: server.print_help() or 2)


def start_server(args: argparse.Namespace) -> int:
    from ..api.errors import SchemaVersionError, ServerConfigError
    from ..api.server import StateServer, serve_until_signalled
    from ..api.settings import DEFAULT_PORT, get_settings
    from ..blocks.notify import install_notifier

    install_notifier()  # the server's automations send notifications through blocks

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr)
    try:
        server = StateServer(
            args.home or settings.home,
            host=args.host,
            port=DEFAULT_PORT if args.port is None else args.port,
            token=args.token or settings.api_token,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            writer_process=settings.writer_process,
            heartbeat_timeout=(
                settings.heartbeat_timeout_seconds
                if args.heartbeat_timeout is None else args.heartbeat_timeout
            ),
            heartbeat_interval=settings.heartbeat_interval_seconds,
            synchronous=settings.db_synchronous,
        )
        serve_until_signalled(server)
    except (ServerConfigError, SchemaVersionError, OSError, RuntimeError) as exc:
        print(f"headwater server: {exc}", file=sys.stderr)
        return 1
    return 0
