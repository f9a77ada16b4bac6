"""The result cache's RPCs: the state service serves its home's `LocalStore` to processes that
do not share that directory (a cluster's workers, another machine), as `RemoteStore` uses it.

The store is opened on the first cache call, so a server whose clients never cache creates
nothing under its home; a home it cannot write is a `CacheStoreError` for that call (sent as
FAILED_PRECONDITION, see `errors.py`), tried again on the next one.

What crosses the wire is bytes, never a value: a client builds an entry's body itself
(`entries.make_body`, writing a `result_storage` value itself) and unpickles what it reads in
its own process. The server checks that a body it is given is a well-formed entry (its header
is read and validated, so a bad one cannot break later listings) and signs it with its own
key; it never unpickles a payload. A body must fit in one gRPC message: a value too large for
that belongs in `result_storage`, which every message here says.

Handlers are `bytes -> dict` like the rest of `StateService` and run under its authorization
and `_guarded` error mapping; `CACHE_WRITES` are the calls that carry a request id, so a retry
of a claim or a count whose reply was lost gets the original reply instead of running twice.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cache.entries import CacheValueMissing, split_body
from ..cache.store import LocalStore
from ..errors import CacheStoreError
from . import codec
from . import models as m
from .errors import InvalidPayload, PayloadTooLarge

Handler = Callable[[bytes], dict[str, Any]]

#: Calls that change the store: retried with one request id (`service._Replies`).
CACHE_WRITES = frozenset(
    {"CacheWrite", "CacheClaim", "CacheRenew", "CacheRelease", "CacheRecord", "CacheClear", "CacheDelete"}
)
#: How much of a message a page of `CacheEntries` may fill; the client asks for the rest.
_PAGE_BYTES = codec.MAX_GRPC_MESSAGE // 4


def body_too_large(key: str, size: int) -> str:
    """Why a body of `size` bytes cannot go through the state service, and what to do."""
    return (
        f"cached value {key} is {size} bytes, more than the state service carries in one message "
        f"({m.MAX_CACHE_BODY} bytes); set result_storage on the task (an fsspec URL every "
        "worker can reach) so large values are kept there and only their header goes through "
        "the state service"
    )


def _store_errors(fn: Callable[[CacheService, bytes], dict[str, Any]]) -> Callable[[CacheService, bytes], dict[str, Any]]:
    """Turn diskcache's own failures (SQLite, the disk) into a `CacheStoreError` naming the
    cache directory: otherwise the service would blame its run database."""

    @functools.wraps(fn)
    def wrapper(self: CacheService, data: bytes) -> dict[str, Any]:
        try:
            return fn(self, data)
        except CacheStoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise CacheStoreError(
                f"the state service's result cache at {self.directory} failed "
                f"({type(exc).__name__}: {exc}); check its disk, or clear it with "
                "`headwater cache clear`"
            ) from exc

    return wrapper


class CacheService:
    """The cache calls of the state service, over `home/cache` (signed with `home/cache.key`)."""

    def __init__(self, home: Path) -> None:
        self.directory = home / "cache"
        self._key_file = home / "cache.key"
        self._lock = threading.Lock()
        self._store: LocalStore | None = None

    def handlers(self) -> dict[str, Handler]:
        return {
            "CacheInfo": self.info, "CacheLookup": self.lookup, "CacheRead": self.read,
            "CacheWrite": self.write, "CacheDelete": self.delete, "CacheClaim": self.claim,
            "CacheRenew": self.renew, "CacheRelease": self.release, "CacheClaimed": self.claimed,
            "CacheRecord": self.record, "CacheNote": self.note, "CacheEntries": self.entries,
            "CacheStats": self.stats, "CacheClear": self.clear,
        }  # fmt: skip

    def store(self) -> LocalStore:
        """The store, opened on first use; a failure to open it is tried again next call."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = LocalStore(self.directory, self._key_file)
                except CacheStoreError as exc:
                    raise CacheStoreError(f"on the state service: {exc}") from exc
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- entries ---------------------------------------------------------------------------

    @_store_errors
    def info(self, data: bytes) -> dict[str, Any]:
        codec.decode(m.Empty, data)
        return {"store_id": self.store().store_id}

    @_store_errors
    def lookup(self, data: bytes) -> dict[str, Any]:
        entry = self.store().lookup(codec.decode(m.CacheKeyIn, data).key)
        return {"entry": None if entry is None else codec.entry_body(entry)}

    @_store_errors
    def read(self, data: bytes) -> dict[str, Any]:
        key = codec.decode(m.CacheKeyIn, data).key
        body = self.store().read_body(key)
        if len(body) > m.MAX_CACHE_BODY:  # written by a process on this machine, directly
            raise CacheValueMissing(body_too_large(key, len(body)))
        return {"body": body}

    @_store_errors
    def write(self, data: bytes) -> dict[str, Any]:
        raw = codec.unpack(data, max_bytes=codec.MAX_GRPC_MESSAGE)
        if isinstance(raw, dict) and isinstance(raw.get("body"), bytes) and len(raw["body"]) > m.MAX_CACHE_BODY:
            raise PayloadTooLarge(body_too_large(str(raw.get("key"))[: m.MAX_CACHE_KEY], len(raw["body"])))
        request = codec.validate(m.CacheWriteIn, raw)
        try:
            entry, _ = split_body(request.key, request.body)
        except (ValueError, TypeError) as exc:  # a prefix that lies, a header that is not msgpack
            raise InvalidPayload(f"CacheWrite: the body is not a cache entry ({exc})") from None
        try:
            codec.checked_entry(entry)
        except InvalidPayload as exc:
            raise InvalidPayload(f"CacheWrite: the body's header is not a cache entry's ({exc})") from None
        self.store().write_body(request.key, request.body)
        return {}

    @_store_errors
    def delete(self, data: bytes) -> dict[str, Any]:
        self.store().delete(codec.decode(m.CacheKeyIn, data).key)
        return {}

    # -- single flight ---------------------------------------------------------------------

    @_store_errors
    def claim(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.CacheClaimIn, data)
        return {"ok": self.store().claim(body.key, body.owner, body.ttl)}

    @_store_errors
    def renew(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.CacheClaimIn, data)
        return {"ok": self.store().renew(body.key, body.owner, body.ttl)}

    @_store_errors
    def release(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.CacheReleaseIn, data)
        self.store().release(body.key, body.owner)
        return {}

    @_store_errors
    def claimed(self, data: bytes) -> dict[str, Any]:
        return {"ok": self.store().claimed(codec.decode(m.CacheKeyIn, data).key)}

    # -- notes, counts, listing ------------------------------------------------------------

    @_store_errors
    def record(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.CacheRecordIn, data, max_bytes=codec.MAX_BATCH_BYTES)
        self.store().record([codec.note_of(n) for n in body.notes], hits=body.hits, misses=body.misses)
        return {}

    @_store_errors
    def note(self, data: bytes) -> dict[str, Any]:
        note = self.store().note(codec.decode(m.CacheNoteIn, data).run_id)
        return {"note": None if note is None else codec.note_body(note)}

    @_store_errors
    def entries(self, data: bytes) -> dict[str, Any]:
        """One page, in key order, of at most `limit` entries and `_PAGE_BYTES` bytes."""
        body = codec.decode(m.CacheEntriesIn, data)
        live = sorted(
            (e for e in self.store().entries() if body.task is None or e.task == body.task),
            key=lambda e: e.key,
        )
        page: list[dict[str, Any]] = []
        used = 0
        for entry in live:
            if body.after is not None and entry.key <= body.after:
                continue
            shaped = codec.entry_body(entry)
            used += len(codec.pack(shaped))
            if len(page) == body.limit or (page and used > _PAGE_BYTES):
                return {"entries": page, "more": True}
            page.append(shaped)
        return {"entries": page, "more": False}

    @_store_errors
    def stats(self, data: bytes) -> dict[str, Any]:
        codec.decode(m.Empty, data)
        return codec.stats_body(self.store().stats())

    @_store_errors
    def clear(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.CacheClearIn, data)
        return {"count": self.store().clear(task=body.task, older_than=body.older_than)}
