"""`LockedStore`: one SQLite connection behind one lock, for the service's small stores
(concurrency slots, control messages, pauses) that write their own tables beside `Storage`.

Each store is thread-safe by holding its lock for a whole transaction, which is short. A
write is `BEGIN IMMEDIATE` (so it never has to upgrade a read lock and deadlock with another
writer of the file) ... `COMMIT`; anything raised inside rolls it back, and SQLite's errors
leave as a `StorageError` naming the file, the cause and the remedy.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .dbfile import storage_error
from .schema import connect


class LockedStore:
    """See the module docstring; subclasses add their tables' reads and writes."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", beside_storage: bool = False) -> None:
        """`beside_storage`: a `Storage` of this process has the file open already (see
        `schema.connect`'s `check`)."""
        self.path = path
        self._conn = connect(path, synchronous=synchronous, check=not beside_storage)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                self._before_commit(cur)
                cur.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise storage_error(self.path, exc) from None
                raise

    def _before_commit(self, cur: sqlite3.Cursor) -> None:
        """The last statement of every write (none here)."""

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from None
