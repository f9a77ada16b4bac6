"""The database file on disk: created private, checked for damage, its troubles named.

- `prepare` creates `HEADWATER_HOME` 0700 and the database file 0600 when they do not exist
  (SQLite gives the `-wal` and `-shm` files the database file's mode). A directory or file
  that already exists keeps the mode its owner gave it.
- `check_header` refuses a file that is not SQLite, or is shorter than its header says
  (truncated), before SQLite reads a page of it.
- `storage_error` turns a sqlite3 or OS error into a `StorageError` that names the file, the
  cause and the remedy: SQLite's own "database or disk is full" or "file is not a database"
  name no file and no way out.
- `diagnose` and `move_aside` are `headwater db reset`: a damaged database is renamed with a
  timestamp (kept, never deleted), and only on that explicit command, so the next start
  begins a new one. Nothing here replaces a database by itself.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path

from .errors import DamagedDatabase, StorageError

_MAGIC = b"SQLite format 3\x00"
# SQLite's primary result codes (the low byte of an extended code).
_PERM, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 8, 10, 11, 13, 14, 26
_NO_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


def prepare(path: Path) -> None:
    """Create the database's directory (0700) and file (0600) if they do not exist yet."""
    home = path.parent
    if not home.is_dir():
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the headwater directory {home} ({exc.strerror or exc}): create "
                f"it, or set HEADWATER_HOME to a directory you can write"
            ) from None
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def check_header(path: Path) -> None:
    """Raise `DamagedDatabase` if `path` holds something other than a whole SQLite database
    (an empty or absent file is fine: a new database)."""
    cause = _header_problem(path)
    if cause is not None:
        raise DamagedDatabase(_damaged(path, cause))


def _header_problem(path: Path) -> str | None:
    """What is wrong with the file at `path` judged by its size and 100-byte header, if
    anything. Truncation is judged only when no write-ahead log is pending: a checkpoint cut
    short writes the header before the pages that follow it, and the log still holds them."""
    try:
        with open(path, "rb") as f:
            header, size = f.read(100), os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    if len(header) < 100 or not header.startswith(_MAGIC):
        return "file is not a database: its header is not SQLite's"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96]
    wal = path.with_name(path.name + "-wal")
    if header_valid and size < pages * page_size and not (wal.exists() and wal.stat().st_size):
        return f"truncated: {size} bytes where its header says {pages * page_size}"
    return None


def storage_error(path: Path, exc: BaseException) -> StorageError:
    """`exc`, met opening or writing the database at `path`, as a `StorageError` (or
    `DamagedDatabase`) naming the file, the cause and the remedy."""
    if isinstance(exc, StorageError):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)
    code = code & 0xFF if isinstance(code, int) else None
    err = exc.errno if isinstance(exc, OSError) else None
    cause = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    elsewhere = "or set HEADWATER_HOME to another directory"
    if code in (_CORRUPT, _NOTADB):
        return DamagedDatabase(_damaged(path, cause))
    if code == _FULL or err == errno.ENOSPC:
        return StorageError(
            f"cannot write the headwater database {path}: the disk is full ({cause}); free "
            f"space on it, {elsewhere} on another disk"
        )
    if code in (_READONLY, _CANTOPEN, _PERM) or err in _NO_WRITE_ERRNOS:
        return StorageError(
            f"cannot write the headwater database {path} ({cause}): make {path.parent} "
            f"writable, {elsewhere}"
        )
    if code == _IOERR or isinstance(exc, OSError):
        return StorageError(
            f"I/O error on the headwater database {path} ({cause}): check the disk it is on, "
            f"{elsewhere}"
        )
    return StorageError(f"the headwater database {path}: {cause}")


def _damaged(path: Path, cause: str) -> str:
    return (
        f"the headwater database {path} is damaged ({cause}); it is left as it is: "
        f"`headwater db reset --home {path.parent}` moves it aside (kept as "
        f"{path.name}.damaged-<time>) so the next start begins a new database, or set "
        f"HEADWATER_HOME to another directory"
    )


def diagnose(path: Path) -> str | None:
    """Why the database at `path` is damaged, or None when it reads as whole (or is absent).

    Reads every page (`PRAGMA quick_check`): meant for `headwater db reset`, not every start."""
    cause = _header_problem(path)
    if cause is not None or not path.exists() or path.stat().st_size == 0:
        return cause
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        error = storage_error(path, exc)
        if isinstance(error, DamagedDatabase):
            return str(exc)
        raise error from None
    return None if problems == ["ok"] else "; ".join(problems[:3])


def move_aside(path: Path) -> Path:
    """Rename the database at `path` (and its -wal and -shm) to `<name>.damaged-<time>`;
    returns the new path of the database file."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))
    return aside
