"""Cached values on this machine: a diskcache under `HEADWATER_HOME/cache`, entries signed.

Each stored blob is `mac || body`, the body as `entries.py` lays it out (a msgpack header
saying what the entry is, then the value pickled with cloudpickle, or nothing when the value
lives in `result_storage`). The MAC is an HMAC-SHA256 over the body, keyed with a secret kept
outside the cache directory (`cache.key`, created 0600), so an entry someone else wrote or
changed is never unpickled: unpickling runs code. An entry that fails its MAC, is truncated,
has lost its file, or does not unpickle is unusable: the store deletes it and warns, and the
caller recomputes and writes it again.

The directory is created owner-only (0700), bounded by `size_limit` bytes with least-recently-
used eviction (diskcache's). Expiry is read from the header when a key is looked up, not left
to diskcache, so a value found live stays loadable for the rest of the run that found it; an
expired entry is deleted when it is next looked up (or listed).

Besides entries the store keeps, in the same diskcache: a small index entry per key (`_META`,
the header alone, so listing reads no values), run notes (what the cache did for each task
run, for `headwater cache explain`), hit and miss counts (every process's), and claims: short
leases that let one process compute a key while the others wait (single flight).

The state service serves a `LocalStore` to processes that do not share this directory
(`RemoteStore` in `headwater.api`), through `read_body` and `write_body`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import diskcache

from ..errors import CacheStoreError
from .entries import (
    CacheValueMissing,
    Entry,
    RunNote,
    Stats,
    external_present,
    make_body,
    pack_note,
    split_body,
    unpack_header,
    unpack_note,
    value_of,
)

log = logging.getLogger("headwater.cache")

DEFAULT_SIZE_LIMIT = 1 << 30  # 1 GiB
NOTE_LIFETIME = 30 * 86400.0  # run notes are kept this long (seconds)
_MAC_SIZE = hashlib.sha256().digest_size
_META = "meta:"  # index entries: key -> header, no value
_VALUE = "value:"
_NOTE = "note:"
_CLAIM = "claim:"
_HITS, _MISSES = "stat:hits", "stat:misses"
ID_FILE = "store.id"


class LocalStore:
    """Signed cache entries in a diskcache directory; see the module docstring."""

    def __init__(self, directory: Path, key_file: Path, *, size_limit: int = DEFAULT_SIZE_LIMIT) -> None:
        self.directory = directory
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._secret = _secret_in(key_file)
            self._cache = diskcache.Cache(
                str(directory), size_limit=size_limit, eviction_policy="least-recently-stored"
            )
            self.store_id = _store_id(directory)
            self._recent = _RecentBodies()
        except OSError as exc:
            raise CacheStoreError(
                f"the result cache at {directory} cannot be used ({exc.strerror or exc}); make "
                "HEADWATER_HOME writable, or point it elsewhere"
            ) from exc

    # -- looking up and loading ------------------------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        """The live entry under `key`, or None. The value's bytes are checked (signature and
        shape) but not unpickled, so a damaged entry is a miss now, not a failure later when
        the value is loaded; a value in `result_storage` is checked when loaded."""
        try:
            entry, payload = self._checked(key)
        except CacheValueMissing:
            return None
        if not entry.is_live():
            self.delete(key)
            return None
        if entry.location is not None and not external_present(entry):
            self._unusable(key, f"its value is gone from {entry.location}, or has another size")
            return None
        self._recent.put(key, entry, payload)
        return entry

    def load(self, key: str) -> Any:
        """The value under `key`; `CacheValueMissing` (the entry is deleted) if it is gone or
        unusable. Does not look at expiry: a value found live by `lookup` stays loadable."""
        found = self._recent.take(key)
        entry, payload = found if found is not None else self._checked(key)
        try:
            return value_of(entry, payload)
        except CacheValueMissing as exc:
            self._unusable(key, str(exc))
            raise

    def read_body(self, key: str) -> bytes:
        """The checked body under `key` (header and payload, without the signature), for the
        state service to hand to a process that does not share this directory."""
        return self._checked_body(key)

    def get(self, key: str) -> tuple[Entry, Any] | None:
        """`lookup` and `load` at once, counting a hit or a miss; None for a miss."""
        entry = self.lookup(key)
        value = None
        if entry is not None:
            try:
                value = self.load(key)
            except CacheValueMissing:
                entry = None
        self.count(hits=entry is not None, misses=entry is None)
        return None if entry is None else (entry, value)

    def _checked(self, key: str) -> tuple[Entry, bytes]:
        body = self._checked_body(key)
        try:
            return split_body(key, body)
        except ValueError as exc:
            self._unusable(key, f"it is damaged ({exc})")
            raise CacheValueMissing(f"cached value {key} is damaged ({exc})") from None

    def _checked_body(self, key: str) -> bytes:
        blob = self._cache.get(_VALUE + key, default=None, retry=True)
        if blob is None:
            if _META + key in self._cache:  # indexed, but the value (its file) is gone
                self._unusable(key, "its stored value is missing")
            raise CacheValueMissing(
                f"cached value {key} is gone (evicted, cleared or lost since it was found); rerun, "
                "or pass refresh_cache=True, to compute it again"
            )
        body = blob[_MAC_SIZE:]
        if len(blob) <= _MAC_SIZE + 4 or not hmac.compare_digest(blob[:_MAC_SIZE], self._mac(body)):
            why = "it does not carry this cache's signature (changed, truncated or written by someone else)"
            self._unusable(key, why)
            raise CacheValueMissing(f"cached value {key} is unusable: {why}")
        return bytes(body)

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
        `storage` (an fsspec URL) the value is written there and only its header is kept here."""
        entry, body = make_body(key, value, task=task, expires=expires, components=components or {}, storage=storage)
        self._write(key, body)
        return entry

    def write_body(self, key: str, body: bytes) -> Entry:
        """Store a body another process made (`entries.make_body`); raises ValueError if it is
        not one."""
        entry, _ = split_body(key, body)
        self._write(key, body)
        return entry

    def _write(self, key: str, body: bytes) -> None:
        size = int.from_bytes(body[:4], "big")
        header = body[4 : 4 + size]
        with self._cache.transact(retry=True):
            self._cache.set(_VALUE + key, self._mac(body) + body, retry=True)
            self._cache.set(_META + key, header, retry=True)

    def _mac(self, body: bytes | memoryview) -> bytes:
        return hmac.digest(self._secret, body, "sha256")

    def delete(self, key: str) -> None:
        self._recent.drop(key)
        with self._cache.transact(retry=True):
            self._cache.delete(_VALUE + key, retry=True)
            self._cache.delete(_META + key, retry=True)

    def _unusable(self, key: str, why: str) -> None:
        log.warning("cache entry %s is unusable: %s; it is deleted and the task runs again", key, why)
        self.delete(key)

    # -- single flight: one process computes a key, the others wait for its value ----------

    def claim(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lease to compute `key` for `ttl` seconds; False if another owner holds it."""
        return bool(self._cache.add(_CLAIM + key, owner, expire=ttl, retry=True))

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        """Extend `owner`'s lease; False if it expired (and may be someone else's now)."""
        with self._cache.transact(retry=True):
            if self._cache.get(_CLAIM + key, default=None, retry=True) != owner:
                return False
            return bool(self._cache.touch(_CLAIM + key, expire=ttl, retry=True))

    def release(self, key: str, owner: str) -> None:
        """Give the lease up, if `owner` still holds it (a late release from an expired lease
        must not free someone else's)."""
        with self._cache.transact(retry=True):
            if self._cache.get(_CLAIM + key, default=None, retry=True) == owner:
                self._cache.delete(_CLAIM + key, retry=True)

    def claimed(self, key: str) -> bool:
        return self._cache.get(_CLAIM + key, default=None, retry=True) is not None

    # -- run notes and counts ------------------------------------------------------------------

    def record(self, notes: Iterable[RunNote] = (), *, hits: int = 0, misses: int = 0) -> None:
        """Keep run notes and add to the hit and miss counts, in one transaction (the runtime
        batches these off the task's path)."""
        with self._cache.transact(retry=True):
            for note in notes:
                self._cache.set(_NOTE + note.run_id, pack_note(note), expire=NOTE_LIFETIME, retry=True)
            self.count(hits, misses)

    def count(self, hits: int = 0, misses: int = 0) -> None:
        if hits:
            self._cache.incr(_HITS, int(hits), retry=True)
        if misses:
            self._cache.incr(_MISSES, int(misses), retry=True)

    def note(self, run_id: str) -> RunNote | None:
        blob = self._cache.get(_NOTE + str(run_id), default=None, retry=True)
        return None if blob is None else unpack_note(blob)

    def entries_of(self, task: str) -> list[Entry]:
        return [entry for entry in self.entries() if entry.task == task]

    # -- looking at the cache ----------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        """Every live entry, from the index alone (no value is read)."""
        now = time.time()
        return (entry for entry in self._indexed() if entry.is_live(now))

    def _indexed(self) -> Iterator[Entry]:
        """Every indexed entry, expired ones too."""
        for name in list(self._cache.iterkeys()):
            if not (isinstance(name, str) and name.startswith(_META)):
                continue
            header = self._cache.get(name, default=None, retry=True)
            if header is not None:
                yield unpack_header(name[len(_META) :], header)

    def stats(self) -> Stats:
        entries = list(self.entries())
        return Stats(
            len(entries),
            sum(entry.size for entry in entries),
            int(self._cache.get(_HITS, default=0, retry=True)),
            int(self._cache.get(_MISSES, default=0, retry=True)),
        )

    def clear(self, *, task: str | None = None, older_than: float | None = None) -> int:
        """Delete entries (of `task`, created more than `older_than` seconds ago, or all);
        returns how many. Expired entries go too."""
        cutoff = None if older_than is None else time.time() - older_than
        now = time.time()
        doomed = []
        for entry in self._indexed():
            if not entry.is_live(now):
                self.delete(entry.key)
            elif (task is None or entry.task == task) and (cutoff is None or entry.created < cutoff):
                doomed.append(entry.key)
        for key in doomed:
            self.delete(key)
        return len(doomed)

    def close(self) -> None:
        self._cache.close()


class _RecentBodies:
    """The last few small values `lookup` checked, so the `load` that usually follows a hit
    does not read and check them a second time. Bounded in count and size; taken once."""

    MAX_ENTRIES = 64
    MAX_BYTES = 256 * 1024  # bigger values are read again: holding them would cost memory

    def __init__(self) -> None:
        self._bodies: OrderedDict[str, tuple[Entry, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, entry: Entry, payload: bytes) -> None:
        if len(payload) > self.MAX_BYTES:
            return
        with self._lock:
            self._bodies[key] = (entry, payload)
            if len(self._bodies) > self.MAX_ENTRIES:
                self._bodies.popitem(last=False)

    def take(self, key: str) -> tuple[Entry, bytes] | None:
        with self._lock:
            return self._bodies.pop(key, None)

    def drop(self, key: str) -> None:
        with self._lock:
            self._bodies.pop(key, None)


def _store_id(directory: Path) -> str:
    """The store's identity: a process whose cache directory holds the same id shares this
    store and reads it directly instead of through the state service."""
    path = directory / ID_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(20):
            ident = path.read_text().strip()
            if ident:
                return ident
            time.sleep(0.01)
        raise CacheStoreError(f"the cache id file {path} is empty; delete it and run again") from None
    ident = uuid.uuid4().hex
    with os.fdopen(fd, "w") as file:
        file.write(ident)
    return ident


def read_store_id(directory: Path) -> str | None:
    """The id of the store in `directory`, without opening it; None if there is none."""
    try:
        return (directory / ID_FILE).read_text().strip() or None
    except OSError:
        return None


def _secret_in(key_file: Path) -> bytes:
    """The signing secret, created once (0600, owner-only) if the file does not exist yet; two
    processes racing to create it agree on whichever wrote first."""
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = key_file.read_bytes()
        if len(secret) < 32:  # a writer that has not finished: wait for it once
            time.sleep(0.05)
            secret = key_file.read_bytes()
        if len(secret) < 32:
            raise CacheStoreError(
                f"the cache key file {key_file} is damaged ({len(secret)} bytes); delete it "
                "(the cache's entries are then discarded as unsigned) and run again"
            ) from None
        return secret
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
    return secret
