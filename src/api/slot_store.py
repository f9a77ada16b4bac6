"""Concurrency limits and leases in SQLite (tables of schema v5), so both survive a restart.

The server's ledger (`slot_ledger.py`) is the authority while it runs; this store is what it
starts from. A lease is written before its grant is answered, renewals and releases as they
happen, each call one transaction on this store's own connection (SQLite serializes it with the
run recorder's writes). A rate limit's decaying use is not stored: a restart forgets at most
`limit` slots of use, for as long as that use would have taken to drain.

The CLI writes limits here directly when no `HEADWATER_API_URL` is set. Every change to a limit
(and a reset, which deletes leases) bumps `concurrency_changes.generation` in the same
transaction; a running server compares it with the generation it last read (`generation()`,
one indexed read) before it decides anything, and reloads when someone else changed it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from .errors import LimitNotFound
from .locked_store import LockedStore
from .slot_records import MAX_LIMIT_NAME, Holder, LeaseRecord, LimitInfo, LimitSpec, holder_info

_LEASE_COLUMNS = (
    "id, request_id, names, occupy, label, task_run_id, flow_run_id, host, pid, acquired_at, "
    "expires_at, lease_seconds"
)


class SlotStore(LockedStore):
    """Limits and leases under one database file; thread-safe (one connection, one lock).
    A write made with `changed=True` also bumps `concurrency_changes.generation`, which a
    running server compares to know someone else changed the limits."""

    @contextmanager
    def _changing(self) -> Iterator[sqlite3.Cursor]:
        """A write that changes limits (or frees leases a reset took): counted in the
        generation, in the same transaction."""
        with self._write() as cur:
            yield cur
            cur.execute("UPDATE concurrency_changes SET generation = generation + 1")

    # -- limits ----------------------------------------------------------------------------

    def generation(self) -> int:
        return int(self._read("SELECT generation FROM concurrency_changes")[0][0])

    def limits(self) -> list[LimitSpec]:
        rows = self._read(
            "SELECT name, slot_limit, slot_decay_per_second, created FROM concurrency_limits ORDER BY name"
        )
        return [LimitSpec(str(n), int(lim), float(d), float(c)) for n, lim, d, c in rows]

    def put_limit(self, name: str, limit: int, decay: float) -> LimitSpec:
        """Create `name`, or change its limit and decay (keeping its creation time)."""
        now = time.time()
        with self._changing() as cur:
            cur.execute(
                "INSERT INTO concurrency_limits (name, slot_limit, slot_decay_per_second, created) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "slot_limit = excluded.slot_limit, slot_decay_per_second = excluded.slot_decay_per_second",
                (name, limit, decay, now),
            )
            row = cur.execute("SELECT created FROM concurrency_limits WHERE name = ?", (name,)).fetchone()
        return LimitSpec(name, limit, decay, float(row[0]))

    def delete_limit(self, name: str) -> bool:
        with self._changing() as cur:
            return cur.execute("DELETE FROM concurrency_limits WHERE name = ?", (name,)).rowcount > 0

    def reset(self, name: str) -> list[str]:
        """Delete every lease holding `name`; their ids."""
        with self._changing() as cur:
            freed = [
                str(lease_id) for lease_id, names in cur.execute("SELECT id, names FROM concurrency_leases")
                if name in json.loads(names)
            ]
            cur.executemany("DELETE FROM concurrency_leases WHERE id = ?", [(i,) for i in freed])
        return freed

    # -- leases ----------------------------------------------------------------------------

    def leases(self) -> list[LeaseRecord]:
        return [_lease(row) for row in self._read(f"SELECT {_LEASE_COLUMNS} FROM concurrency_leases")]

    def add_leases(self, leases: Iterable[LeaseRecord]) -> None:
        rows = [_lease_row(lease) for lease in leases]
        if rows:
            with self._write() as cur:
                cur.executemany(
                    f"INSERT INTO concurrency_leases ({_LEASE_COLUMNS}) VALUES ({', '.join('?' * 12)})", rows
                )

    def renew(self, leases: Iterable[LeaseRecord]) -> None:
        rows = [(lease.expires_at, lease.lease_seconds, lease.id) for lease in leases]
        if rows:
            with self._write() as cur:
                cur.executemany(
                    "UPDATE concurrency_leases SET expires_at = ?, lease_seconds = ? WHERE id = ?", rows
                )

    def delete_leases(self, lease_ids: Iterable[str]) -> None:
        self.change_leases(lease_ids, ())

    def change_leases(self, deleted: Iterable[str], added: Iterable[LeaseRecord]) -> None:
        """Delete some leases and add others in one transaction: a release and the grants it
        lets through cost one commit, not two."""
        gone = [(lease_id,) for lease_id in deleted]
        rows = [_lease_row(lease) for lease in added]
        if gone or rows:
            with self._write() as cur:
                if gone:
                    cur.executemany("DELETE FROM concurrency_leases WHERE id = ?", gone)
                if rows:
                    cur.executemany(
                        f"INSERT INTO concurrency_leases ({_LEASE_COLUMNS}) VALUES ({', '.join('?' * 12)})", rows
                    )


def _lease_row(lease: LeaseRecord) -> tuple[object, ...]:
    h = lease.holder
    return (
        lease.id, lease.request_id, json.dumps(list(lease.names)), lease.occupy, h.label,
        None if h.task_run_id is None else h.task_run_id.bytes,
        None if h.flow_run_id is None else h.flow_run_id.bytes,
        h.host, h.pid, lease.acquired_at, lease.expires_at, lease.lease_seconds,
    )


def _lease(row: Any) -> LeaseRecord:
    lid, rid, names, occupy, label, task_run, flow_run, host, pid, acquired, expires, seconds = row
    holder = Holder(
        str(label),
        None if task_run is None else UUID(bytes=bytes(task_run)),
        None if flow_run is None else UUID(bytes=bytes(flow_run)),
        str(host or ""), int(pid or 0),
    )
    return LeaseRecord(
        str(lid), str(rid), tuple(json.loads(str(names))), int(occupy), holder,
        float(acquired), float(expires), float(seconds),
    )


class StoredLimits:
    """The limit verbs of `SlotClient` (`create_limit`, `read_limit`, `list_limits`,
    `reset_limit`, `delete_limit`) straight on the database, for the CLI when no
    `HEADWATER_API_URL` is set. A server running on the same home (a flow's embedded one)
    picks the change up through the change counter. The wait queue lives only in a server's
    memory, so `waiting` is 0 here; holders are the stored leases not yet expired."""

    def __init__(self, path: Path) -> None:
        self._store = SlotStore(path)

    def __enter__(self) -> StoredLimits:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._store.close()

    def create_limit(self, name: str, limit: int, *, slot_decay_per_second: float = 0.0) -> LimitInfo:
        check_limit(name, limit, slot_decay_per_second)
        self._store.put_limit(name, int(limit), float(slot_decay_per_second))
        return self.read_limit(name)

    def read_limit(self, name: str) -> LimitInfo:
        for info in self._infos(name):
            return info
        raise limit_not_found(name)

    def list_limits(self) -> list[LimitInfo]:
        return self._infos(None)

    def reset_limit(self, name: str) -> None:
        self.read_limit(name)
        self._store.reset(name)

    def delete_limit(self, name: str) -> None:
        if not self._store.delete_limit(name):
            raise limit_not_found(name)

    def _infos(self, only: str | None) -> list[LimitInfo]:
        now = time.time()
        live = [lease for lease in self._store.leases() if lease.expires_at > now]
        infos = []
        for spec in self._store.limits():
            if only is not None and spec.name != only:
                continue
            holders = sorted(
                (holder_info(lease) for lease in live if spec.name in lease.names),
                key=lambda h: h.acquired_at,
            )
            active = sum(h.occupy for h in holders)
            infos.append(LimitInfo(spec.name, spec.limit, spec.slot_decay_per_second, active, 0, holders, spec.created))
        return infos


def check_limit(name: str, limit: int, decay: float) -> None:
    """What the server's wire model checks, for writes that do not go through it."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_LIMIT_NAME:
        raise ValueError(f"a concurrency limit's name is 1 to {MAX_LIMIT_NAME} characters, not {name!r}")
    if not isinstance(limit, int) or limit < 0:
        raise ValueError(f"a concurrency limit is an int of 0 or more, not {limit!r}")
    if not decay >= 0 or decay == float("inf"):
        raise ValueError(f"slot_decay_per_second is a finite number of 0 or more, not {decay!r}")


def limit_not_found(name: str) -> LimitNotFound:
    return LimitNotFound(
        f"no concurrency limit named {name!r}; see `headwater concurrency-limit ls`, or create it "
        f"with `headwater concurrency-limit create {name} N`"
    )
