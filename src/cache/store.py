"""Cached values on this machine: a diskcache under `HEADWATER_HOME/cache`, entries signed.

Each entry is `mac || header || payload`: the header (msgpack: task name, created, expires,
payload size) says what the entry is without unpickling it; the payload is the value pickled
with cloudpickle. The MAC is an HMAC-SHA256 over header and payload, keyed with a secret kept
outside the cache directory (`cache.key`, created 0600), so an entry someone else wrote or
changed is never unpickled: unpickling runs code. An entry that fails its MAC, is truncated,
has lost its file, or does not unpickle is a miss: the store deletes it, warns once per key,
and the caller recomputes and writes it again.

The directory is created owner-only (0700), bounded by `size_limit` bytes with least-recently-
used eviction (diskcache's). Expiry is diskcache's too: an expired entry is never returned.
Hits and misses are counted in the cache itself, so `stats()` sees every process's.

A small index entry per key (`_META`) carries the header alone, so listing the cache reads no
values.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import cloudpickle
import diskcache
import msgpack

from ..errors import CacheStoreError

log = logging.getLogger("headwater.cache")

DEFAULT_SIZE_LIMIT = 1 << 30  # 1 GiB
_MAC_SIZE = hashlib.sha256().digest_size
_META = "meta:"  # index entries: key -> header, no value
_VALUE = "value:"
_HITS, _MISSES = "stat:hits", "stat:misses"


class Entry(NamedTuple):
    """What `entries()` lists for one key, read from its header alone."""

    key: str
    task: str
    size: int
    created: float
    expires: float | None


class Stats(NamedTuple):
    entries: int
    bytes: int
    hits: int
    misses: int


class Hit(NamedTuple):
    value: Any
    entry: Entry


class LocalStore:
    """Signed cache entries in a diskcache directory; see the module docstring."""

    def __init__(self, directory: Path, key_file: Path, *, size_limit: int = DEFAULT_SIZE_LIMIT) -> None:
        self.directory = directory
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._secret = _secret_in(key_file)
            self._cache = diskcache.Cache(
                str(directory), size_limit=size_limit, eviction_policy="least-recently-used"
            )
        except OSError as exc:
            raise CacheStoreError(
                f"the result cache at {directory} cannot be used ({exc.strerror or exc}); make "
                "HEADWATER_HOME writable, or point it elsewhere"
            ) from exc

    # -- reading and writing ---------------------------------------------------------------

    def get(self, key: str) -> Hit | None:
        """The value stored under `key`, or None (never stored, expired, or unusable)."""
        blob = self._cache.get(_VALUE + key, default=None, retry=True)
        if blob is not None:
            hit = self._open(key, blob)
        else:
            hit = None
            if _META + key in self._cache:  # indexed, but its value (file) is gone
                self._unusable(key, "its stored value is missing")
        self._cache.incr(_HITS if hit is not None else _MISSES, retry=True)
        return hit

    def put(self, key: str, value: Any, *, task: str, expires: float | None = None) -> int:
        """Store `value` (pickled with cloudpickle) under `key` until `expires` (epoch
        seconds, None: until evicted); returns the stored size in bytes."""
        payload = cloudpickle.dumps(value)
        created = time.time()
        header = msgpack.packb([task, created, expires, len(payload)])
        body = len(header).to_bytes(4, "big") + header + payload
        blob = hmac.digest(self._secret, body, "sha256") + body
        ttl = None if expires is None else max(expires - created, 0.001)
        with self._cache.transact(retry=True):
            self._cache.set(_VALUE + key, blob, expire=ttl, tag=task, retry=True)
            self._cache.set(_META + key, header, expire=ttl, tag=task, retry=True)
        return len(blob)

    def delete(self, key: str) -> None:
        with self._cache.transact(retry=True):
            self._cache.delete(_VALUE + key, retry=True)
            self._cache.delete(_META + key, retry=True)

    def _open(self, key: str, blob: bytes) -> Hit | None:
        mac, body = blob[:_MAC_SIZE], blob[_MAC_SIZE:]
        if len(blob) <= _MAC_SIZE + 4 or not hmac.compare_digest(mac, hmac.digest(self._secret, body, "sha256")):
            self._unusable(key, "it does not carry this cache's signature (changed, truncated or "
                                "written by someone else)")  # fmt: skip
            return None
        size = int.from_bytes(body[:4], "big")
        try:
            task, created, expires, length = msgpack.unpackb(body[4 : 4 + size])
            value = cloudpickle.loads(body[4 + size :])
        except Exception as exc:  # signed but unreadable: a version that pickles differently
            self._unusable(key, f"it cannot be read ({type(exc).__name__}: {exc})")
            return None
        return Hit(value, Entry(key, task, length, created, expires))

    def _unusable(self, key: str, why: str) -> None:
        log.warning("cache entry %s is unusable: %s; it is deleted and the task runs again", key, why)
        self.delete(key)

    # -- looking at the cache ----------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        """Every live entry, from the index alone (no value is read)."""
        now = time.time()
        for name in list(self._cache.iterkeys()):
            if not (isinstance(name, str) and name.startswith(_META)):
                continue
            header = self._cache.get(name, default=None, retry=True)
            if header is None:
                continue
            task, created, expires, length = msgpack.unpackb(header)
            if expires is None or expires > now:
                yield Entry(name[len(_META) :], task, length, created, expires)

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
        returns how many."""
        cutoff = None if older_than is None else time.time() - older_than
        doomed = [
            entry.key for entry in self.entries()
            if (task is None or entry.task == task) and (cutoff is None or entry.created < cutoff)
        ]  # fmt: skip
        for key in doomed:
            self.delete(key)
        return len(doomed)

    def close(self) -> None:
        self._cache.close()


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
