"""What the cache did, written off the task's path: run notes and hit/miss counts in batches.

A cached run's note (its key, the key's components, hit or miss) is what `headwater cache
explain` reads, and the counts are what `headwater cache stats` shows. Writing each at once
would put a store write (an SQLite transaction, or a call to the state service) on every hit,
which is most of a hit's cost. Instead notes are appended here and one thread per process
writes whatever has gathered every `FLUSH_INTERVAL` seconds, in one transaction per store; a
flow flushes at its end (`flush_journals`), and so does the process at exit.

A note that cannot be written (the store went away) is dropped with a warning: it explains a
run, it is not the run's result.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from ..cache.entries import RunNote

log = logging.getLogger("headwater.cache")

FLUSH_INTERVAL = 0.5


class Journal:
    """Pending notes and counts for one store."""

    __slots__ = ("store", "_notes", "_hits", "_misses", "_lock", "__weakref__")

    def __init__(self, store: Any) -> None:
        self.store = store
        self._notes: list[RunNote] = []
        self._hits = self._misses = 0
        self._lock = threading.Lock()

    def add(self, note: RunNote, *, hit: bool, miss: bool) -> None:
        with self._lock:
            self._notes.append(note)
            self._hits += hit
            self._misses += miss
        _flusher.wake()

    def flush(self) -> None:
        with self._lock:
            notes, hits, misses = self._notes, self._hits, self._misses
            if not notes and not hits and not misses:
                return
            self._notes, self._hits, self._misses = [], 0, 0
        try:
            self.store.record(notes, hits=hits, misses=misses)
        except Exception as exc:
            log.warning("%d cache notes were not written (%s); `headwater cache explain` will not "
                        "know those runs", len(notes), exc)  # fmt: skip


_keep: dict[int, Journal] = {}  # journals with a store this process holds open
_lock = threading.Lock()


def journal_for(store: Any) -> Journal:
    journal = _keep.get(id(store))
    if journal is not None and journal.store is store:
        return journal
    with _lock:
        journal = _keep.get(id(store))
        if journal is None or journal.store is not store:
            journal = _keep[id(store)] = Journal(store)
    return journal


def flush_journals() -> None:
    """Write every pending note and count now (a flow's end; tests)."""
    for journal in list(_keep.values()):
        journal.flush()


class _Flusher:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="headwater-cache-journal", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._event.wait(FLUSH_INTERVAL):
            flush_journals()


_flusher = _Flusher()
atexit.register(flush_journals)
