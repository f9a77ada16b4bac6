"""A doorbell: how another process on this host tells an embedded state service "look now".

On the embedded default there is no server to call: each flow process serves the state
service to itself, with a random token. The CLI (`headwater runs cancel`) therefore writes
its control message straight into the database, then rings the doorbell of the process that
owns the run, and that process's service reads the new rows at once and pushes them on its
control stream. The ring carries nothing: it only says "read the database", so anyone who
can reach it can at most make the service run one indexed query. That is why a Linux
abstract-namespace datagram socket (no file, no permissions) is fine here.

Where abstract sockets do not exist the doorbell is absent and the server's sweeper, which
reads new rows every sweep (at most a second apart), delivers them instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

SUPPORTED = sys.platform.startswith("linux")


def doorbell_address(db_path: Path, pid: int) -> str:
    """The abstract socket name of the process `pid` serving the database at `db_path`."""
    digest = hashlib.sha256(str(Path(db_path).resolve()).encode()).hexdigest()[:16]
    return f"\0headwater-control-{digest}-{pid}"


def ring(db_path: Path, pid: int) -> bool:
    """Ring `pid`'s doorbell; False when nobody listens there (or the platform has none)."""
    if not SUPPORTED:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"!", doorbell_address(db_path, pid))
        except OSError:  # ECONNREFUSED / ENOENT: no service in that process (any more)
            return False
    return True


class Doorbell:
    """Listens on this process's doorbell and calls `on_ring` (on its own thread, which
    blocks in `recv` between rings: no cost while idle)."""

    def __init__(self, db_path: Path, on_ring: Callable[[], None]) -> None:
        self._on_ring = on_ring
        self._sock: socket.socket | None = None
        if not SUPPORTED:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(doorbell_address(db_path, os.getpid()))
        except OSError as exc:  # another service of this process on the same file has it
            sock.close()
            log.debug("no control doorbell for %s: %s", db_path, exc)
            return
        self._sock = sock
        threading.Thread(target=self._listen, name="headwater-doorbell", daemon=True).start()

    def _listen(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                data = sock.recv(16)
            except OSError:
                return  # closed
            if not data:
                return
            try:
                self._on_ring()
            except Exception:
                log.exception("control doorbell handler failed")

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
