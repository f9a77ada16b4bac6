"""What one cache entry is, as bytes: the format every store and the state service share.

An entry's body is `len(header) (4 bytes) || header || payload`:

- the header (msgpack) says what the entry is without unpickling anything: the task's name,
  when it was created and expires, the payload's size, the key's components (what the key
  was made of, for `headwater cache explain`) and, for a value kept in `result_storage`, its
  URL and the SHA-256 of what was written there;
- the payload is the value pickled with cloudpickle, or nothing when the value lives at the
  URL.

A store signs a body before keeping it (an HMAC over the whole body) and checks the signature
before unpickling, so a tampered value is never loaded; a value kept at a URL is checked
against the SHA-256 its signed header carries.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import cloudpickle
import msgpack

from ..errors import CacheStoreError


class CacheValueMissing(CacheStoreError):
    """A cached value could not be loaded: it was evicted, cleared, changed or lost since
    its key was found. The message names the key and what to do."""


class Entry(NamedTuple):
    """One cache entry, from its header alone (no value read)."""

    key: str
    task: str
    size: int
    created: float
    expires: float | None
    components: Mapping[str, str] = {}
    location: str | None = None  # the value's URL in `result_storage`; None: kept in the store
    digest: str | None = None  # SHA-256 (hex) of the bytes at `location`

    def is_live(self, now: float | None = None) -> bool:
        return self.expires is None or self.expires > (time.time() if now is None else now)


class Stats(NamedTuple):
    entries: int
    bytes: int
    hits: int
    misses: int


def pack_header(entry: Entry) -> bytes:
    return msgpack.packb(  # type: ignore[no-any-return]  # msgpack is untyped
        [entry.task, entry.created, entry.expires, entry.size, dict(entry.components), entry.location, entry.digest]
    )


def unpack_header(key: str, header: bytes) -> Entry:
    task, created, expires, size, components, location, digest = msgpack.unpackb(header)
    return Entry(key, task, size, created, expires, components, location, digest)


def make_body(
    key: str,
    value: Any,
    *,
    task: str,
    expires: float | None,
    components: Mapping[str, str],
    storage: str | None = None,
) -> tuple[Entry, bytes]:
    """The entry and body for `value`; with `storage` (an fsspec URL) the pickled value is
    written there and the body carries only the header."""
    payload = pickled(key, value, task)
    location = digest = None
    if storage is not None:
        location, digest = write_external(storage, key, payload)
    entry = Entry(key, task, len(payload), time.time(), expires, dict(components), location, digest)
    header = pack_header(entry)
    body = len(header).to_bytes(4, "big") + header + (b"" if location else payload)
    return entry, body


def pickled(key: str, value: Any, task: str) -> bytes:
    try:
        data: bytes = cloudpickle.dumps(value)
    except Exception as exc:
        raise CacheStoreError(
            f"the value of task {task!r} cannot be cached under {key}: it does not pickle "
            f"({type(exc).__name__}: {exc}); return picklable data, or set cache_policy=NONE"
        ) from exc
    return data


def split_body(key: str, body: bytes) -> tuple[Entry, bytes]:
    """The header and payload of a body whose signature was checked. Raises ValueError on a
    body that is not one (truncated inside)."""
    if len(body) < 4:
        raise ValueError("shorter than its length prefix")
    size = int.from_bytes(body[:4], "big")
    if len(body) < 4 + size:
        raise ValueError("shorter than its header")
    return unpack_header(key, body[4 : 4 + size]), body[4 + size :]


def value_of(entry: Entry, payload: bytes) -> Any:
    """The value a checked body holds: unpickled from the payload, or read from its URL and
    checked against the signed digest first."""
    if entry.location is not None:
        payload = read_external(entry)
    try:
        return cloudpickle.loads(payload)
    except Exception as exc:  # signed but unreadable: a library version that pickles differently
        raise CacheValueMissing(
            f"cached value {entry.key} (task {entry.task!r}) cannot be read ({type(exc).__name__}: "
            f"{exc}); it is discarded, and the task runs again next time"
        ) from exc


# -- values in result_storage (fsspec) ----------------------------------------------------


def external_path(storage: str, key: str) -> str:
    return f"{storage.rstrip('/')}/{key}"


def write_external(storage: str, key: str, payload: bytes) -> tuple[str, str]:
    """Write `payload` to `storage`/`key` (to a temporary name, then moved, so a reader never
    sees half a value); returns its URL and SHA-256."""
    import fsspec  # imported when a task uses result_storage: fsspec is slow to import

    url = external_path(storage, key)
    try:
        fs, path = fsspec.core.url_to_fs(url)
        parent = path.rsplit("/", 1)[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        partial = f"{path}.{time.time_ns()}.partial"
        with fs.open(partial, "wb") as file:
            file.write(payload)
        fs.mv(partial, path)
    except Exception as exc:
        raise CacheStoreError(
            f"result_storage {storage!r} cannot be written ({type(exc).__name__}: {exc}); check the "
            "URL and its credentials"
        ) from exc
    return url, hashlib.sha256(payload).hexdigest()


def external_present(entry: Entry) -> bool:
    """Whether the value at `entry.location` is there with the size stored: a cheap check at
    lookup (its SHA-256 is checked when the value is read)."""
    import fsspec

    assert entry.location is not None
    try:
        fs, path = fsspec.core.url_to_fs(entry.location)
        return int(fs.size(path)) == entry.size
    except Exception:
        return False


def read_external(entry: Entry) -> bytes:
    import fsspec

    assert entry.location is not None
    try:
        with fsspec.open(entry.location, "rb") as file:
            payload: bytes = file.read()
    except Exception as exc:
        raise CacheValueMissing(
            f"cached value {entry.key} (task {entry.task!r}) is gone from {entry.location} "
            f"({type(exc).__name__}: {exc}); rerun with refresh_cache=True to compute it again"
        ) from exc
    if hashlib.sha256(payload).hexdigest() != entry.digest:
        raise CacheValueMissing(
            f"cached value {entry.key} at {entry.location} is not what was stored there (changed "
            "or truncated); it is not loaded, and the task runs again next time"
        )
    return payload


class RunNote(NamedTuple):
    """What the cache did for one task run, kept for `headwater cache explain RUN_ID`: the key
    and its components, and the outcome: "hit", "miss" (computed and stored), "refresh"
    (`refresh_cache`: computed and stored over the entry), "uncacheable" (no key, `reason`
    says why) or "unstored" (computed, but not stored: `reason`)."""

    run_id: str
    task: str
    key: str | None
    components: Mapping[str, str]
    outcome: str
    reason: str
    created: float


def pack_note(note: RunNote) -> bytes:
    return msgpack.packb(  # type: ignore[no-any-return]  # msgpack is untyped
        [note.run_id, note.task, note.key, dict(note.components), note.outcome, note.reason, note.created])


def unpack_note(blob: bytes) -> RunNote:
    return RunNote(*msgpack.unpackb(blob))
