"""`RemoteStore`: the result cache of a state service, with `LocalStore`'s methods and answers.

A process that does not share the server's `HEADWATER_HOME` (a cluster's worker, another
machine) caches through the server (`cache_service.py`). Every method has the name, arguments
and return type of its `LocalStore` twin, and raises what it raises (`CacheValueMissing` for a
value that is gone or unusable, `CacheStoreError` for a store that cannot be used), so the
task engine is written once against either.

Values never cross the wire as objects. `put` builds the entry's body here (`make_body`: a
`result_storage` value is written by this process, and only its header travels) and sends the
bytes; `load` fetches the checked body and unpickles it here, reading a `result_storage`
value from its URL and checking it against the digest the server's signed header carries. A
body must fit in one gRPC message: a bigger value is a `CacheStoreError` telling the user to
set `result_storage`. An unreachable server is retried as `StateClient` retries, then raised
as `ServiceUnavailable`.

`open_cache_store()` is what tools use: the server's store when `HEADWATER_API_URL` is set
(the local directory itself when it holds that very store), else the home's `LocalStore`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..cache.entries import CacheValueMissing, Entry, RunNote, Stats, make_body, split_body, value_of
from ..cache.store import LocalStore, read_store_id
from ..errors import CacheStoreError
from . import codec
from . import models as m
from .cache_service import body_too_large
from .client import Target, UnaryCaller, _Call
from .errors import StateServiceError, cache_error_for_status
from .settings import Settings, get_settings

log = logging.getLogger("headwater.cache")

#: Run notes per `CacheRecord` call: well inside the server's batch size limit.
NOTES_PER_CALL = 1_000


def _none(out: m.Empty) -> None:
    return None


def _entry(out: m.CacheLookupOut) -> Entry | None:
    return None if out.entry is None else codec.entry_of(out.entry)


def _page(out: m.CacheEntriesOut) -> tuple[list[Entry], bool]:
    return [codec.entry_of(e) for e in out.entries], out.more


def _note(out: m.CacheNoteOut) -> RunNote | None:
    return None if out.note is None else codec.note_of(out.note)


def _store_id(out: m.CacheInfoOut) -> str:
    return out.store_id


def _body(out: m.CacheBodyOut) -> bytes:
    return out.body


def _ok(out: m.FlagOut) -> bool:
    return out.ok


def _count(out: m.CountOut) -> int:
    return out.count


CACHE_INFO = _Call("CacheInfo", m.CacheInfoOut, _store_id)
CACHE_LOOKUP = _Call("CacheLookup", m.CacheLookupOut, _entry)
CACHE_READ = _Call("CacheRead", m.CacheBodyOut, _body)
CACHE_WRITE = _Call("CacheWrite", m.Empty, _none, write=True)
CACHE_DELETE = _Call("CacheDelete", m.Empty, _none, write=True)
CACHE_CLAIM = _Call("CacheClaim", m.FlagOut, _ok, write=True)
CACHE_RENEW = _Call("CacheRenew", m.FlagOut, _ok, write=True)
CACHE_RELEASE = _Call("CacheRelease", m.Empty, _none, write=True)
CACHE_CLAIMED = _Call("CacheClaimed", m.FlagOut, _ok)
CACHE_RECORD = _Call("CacheRecord", m.Empty, _none, write=True)
CACHE_NOTE = _Call("CacheNote", m.CacheNoteOut, _note)
CACHE_ENTRIES = _Call("CacheEntries", m.CacheEntriesOut, _page)
CACHE_STATS = _Call("CacheStats", m.CacheStatsOut, codec.stats_of)
CACHE_CLEAR = _Call("CacheClear", m.CountOut, _count, write=True)


class RemoteStore(UnaryCaller):
    """The state service's result cache; thread-safe (one gRPC channel for all threads)."""

    #: Entries per `CacheEntries` call while listing (the server may send fewer).
    page_size = 1_000

    _error_for = staticmethod(cache_error_for_status)

    def __init__(
        self,
        target: Target | str | None = None,
        *,
        token: str | None = None,
        tls_ca: Path | None = None,
        timeout: float = 30.0,
        retry_for: float = 30.0,
    ) -> None:
        """`target` is a `Target` or a URL, resolved as `UnaryCaller` says."""
        super().__init__(target, token=token, tls_ca=tls_ca, timeout=timeout, retry_for=retry_for)
        self._store_id: str | None = None

    @property
    def store_id(self) -> str:
        """The server's store id (asked once): equal to `read_store_id` of a directory that
        holds the same store."""
        if self._store_id is None:
            self._store_id = self._call(CACHE_INFO, {})
        return self._store_id

    # -- looking up and loading ------------------------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        """The live entry under `key` (its header: no value is read), or None."""
        return self._call(CACHE_LOOKUP, {"key": key})

    def load(self, key: str) -> Any:
        """The value under `key`, unpickled here; `CacheValueMissing` (the entry is deleted)
        if it is gone or unusable. Does not look at expiry, like `LocalStore.load`."""
        entry, payload = self._split(key, self.read_body(key))
        return self._value(entry, payload)

    def read_body(self, key: str) -> bytes:
        """The checked body under `key` (header and payload), as the server's store holds it."""
        return self._call(CACHE_READ, {"key": key})

    def get(self, key: str) -> tuple[Entry, Any] | None:
        """`lookup` and `load` at once (one read: the body carries the header), counting a hit
        or a miss; None for a miss."""
        found: tuple[Entry, Any] | None = None
        try:
            entry, payload = self._split(key, self.read_body(key))
            if entry.is_live():
                found = entry, self._value(entry, payload)
            else:
                self.delete(key)
        except CacheValueMissing:
            pass
        self.count(hits=found is not None, misses=found is None)
        return found

    def _split(self, key: str, body: bytes) -> tuple[Entry, bytes]:
        try:
            return split_body(key, body)
        except (ValueError, TypeError) as exc:
            self._unusable(key, f"it is damaged ({exc})")
            raise CacheValueMissing(f"cached value {key} is damaged ({exc})") from None

    def _value(self, entry: Entry, payload: bytes) -> Any:
        try:
            return value_of(entry, payload)
        except CacheValueMissing as exc:
            self._unusable(entry.key, str(exc))
            raise

    def _unusable(self, key: str, why: str) -> None:
        log.warning("cache entry %s is unusable: %s; it is deleted and the task runs again", key, why)
        try:
            self.delete(key)
        except StateServiceError as exc:  # the miss stands; the next writer replaces the entry
            log.warning("cache entry %s could not be deleted: %s", key, exc)

    # -- writing ---------------------------------------------------------------------------

    def put(
        self,
        key: str,
        value: Any,
        *,
        task: str,
        expires: float | None = None,
        components: Mapping[str, str] | None = None,
        storage: str | None = None,
    ) -> Entry:
        """Store `value` under `key` until `expires` (epoch seconds; None: until evicted). With
        `storage` (an fsspec URL) this process writes the value there and sends its header."""
        entry, body = make_body(key, value, task=task, expires=expires, components=components or {}, storage=storage)
        self._send(key, body)
        return entry

    def write_body(self, key: str, body: bytes) -> Entry:
        """Store a body made by `entries.make_body`; raises ValueError if it is not one."""
        entry, _ = split_body(key, body)
        self._send(key, body)
        return entry

    def _send(self, key: str, body: bytes) -> None:
        if len(body) > m.MAX_CACHE_BODY:
            raise CacheStoreError(body_too_large(key, len(body)))
        self._call(CACHE_WRITE, {"key": key, "body": body})

    def delete(self, key: str) -> None:
        self._call(CACHE_DELETE, {"key": key})

    # -- single flight ---------------------------------------------------------------------

    def claim(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lease to compute `key` for `ttl` seconds; False if another owner holds it."""
        return self._call(CACHE_CLAIM, {"key": key, "owner": owner, "ttl": float(ttl)})

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        """Extend `owner`'s lease; False if it expired (and may be someone else's now)."""
        return self._call(CACHE_RENEW, {"key": key, "owner": owner, "ttl": float(ttl)})

    def release(self, key: str, owner: str) -> None:
        """Give the lease up, if `owner` still holds it."""
        self._call(CACHE_RELEASE, {"key": key, "owner": owner})

    def claimed(self, key: str) -> bool:
        return self._call(CACHE_CLAIMED, {"key": key})

    # -- run notes and counts --------------------------------------------------------------

    def record(self, notes: Iterable[RunNote] = (), *, hits: int = 0, misses: int = 0) -> None:
        """Keep run notes and add to the hit and miss counts (the counts with the first call
        when there are many notes)."""
        pending = [codec.note_body(note) for note in notes]
        counts = {"hits": int(hits), "misses": int(misses)}
        while True:
            chunk, pending = pending[:NOTES_PER_CALL], pending[NOTES_PER_CALL:]
            if chunk or counts["hits"] or counts["misses"]:
                self._call(CACHE_RECORD, {"notes": chunk, **counts})
            counts = {"hits": 0, "misses": 0}
            if not pending:
                return

    def count(self, hits: int = 0, misses: int = 0) -> None:
        if hits or misses:
            self._call(CACHE_RECORD, {"hits": int(hits), "misses": int(misses)})

    def note(self, run_id: str) -> RunNote | None:
        return self._call(CACHE_NOTE, {"run_id": str(run_id)})

    def entries_of(self, task: str) -> list[Entry]:
        return list(self._entries(task))

    # -- looking at the cache --------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        """Every live entry, in key order, fetched a page at a time as it is iterated."""
        return self._entries(None)

    def _entries(self, task: str | None) -> Iterator[Entry]:
        after = None
        while True:
            page, more = self._call(CACHE_ENTRIES, {"task": task, "after": after, "limit": self.page_size})
            yield from page
            if not (more and page):
                return
            after = page[-1].key

    def stats(self) -> Stats:
        return self._call(CACHE_STATS, {})

    def clear(self, *, task: str | None = None, older_than: float | None = None) -> int:
        """Delete entries (of `task`, created more than `older_than` seconds ago, or all);
        returns how many. Expired entries go too."""
        return self._call(
            CACHE_CLEAR, {"task": task, "older_than": None if older_than is None else float(older_than)}
        )


def open_cache_store(settings: Settings | None = None, *, retry_for: float = 5.0) -> LocalStore | RemoteStore:
    """The result cache tools (`headwater cache ...`) work on: with `HEADWATER_API_URL` set, the
    server's, read through a `RemoteStore`, or straight from this home's cache directory when
    it holds that same store (a tool on the server's machine); otherwise the home's store. A
    tool waits `retry_for` seconds for a server that is away, not a task's 30."""
    settings = settings or get_settings()
    home = settings.home.expanduser()
    directory, key_file = home / "cache", home / "cache.key"
    if not settings.api_url:
        return LocalStore(directory, key_file)
    target = Target.resolve(settings.api_url, settings.api_token, settings.api_tls_ca)
    remote = RemoteStore(target, retry_for=retry_for)
    local_id = read_store_id(directory)
    try:
        if local_id is None or local_id != remote.store_id:
            return remote
    except BaseException:
        remote.close()
        raise
    remote.close()
    return LocalStore(directory, key_file)
