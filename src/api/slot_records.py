"""The plain data of concurrency slots, shared by the ledger, its store, the service and the
client: what a limit is, who holds a lease, and what a caller is told about a limit.

`Holder` is what a caller says about itself when it asks for slots (shown by
`headwater concurrency-limit inspect`); `HolderInfo` and `LimitInfo` are what `read_limit`
answers. `LimitSpec`, `LeaseRecord` and `Waiter` are the ledger's own rows. Conversion to and
from the wire happens in `codec.py`, as for every other record.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from uuid import UUID

#: The longest limit name; names are tags, so a short bound keeps listings readable.
MAX_LIMIT_NAME = 200


def _hostname() -> str:
    return socket.gethostname()


def _pid() -> int:
    return os.getpid()


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: a label people read ("task run load-3"), the runs it belongs to, and
    where it runs. The host and pid default to this process's, read when the holder is made."""

    label: str
    task_run_id: UUID | None = None
    flow_run_id: UUID | None = None
    host: str = field(default_factory=_hostname)
    pid: int = field(default_factory=_pid)


@dataclass(frozen=True, slots=True)
class HolderInfo:
    """One live lease on a limit, as `read_limit` shows it."""

    lease_id: str
    label: str
    task_run_id: UUID | None
    flow_run_id: UUID | None
    host: str | None
    pid: int | None
    occupy: int
    acquired_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class LimitInfo:
    """A limit and its use now: `active` slots (held by live leases, plus a rate limit's
    decaying use rounded up), `waiting` requests queued on it, and who holds it."""

    name: str
    limit: int
    slot_decay_per_second: float
    active: int
    waiting: int
    holders: list[HolderInfo]
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """A limit as stored: 0 decay is a concurrency limit, more is a rate limit."""

    name: str
    limit: int
    slot_decay_per_second: float
    created: float


@dataclass(slots=True)
class LeaseRecord:
    """A granted concurrency lease: `names` are the limits it holds `occupy` slots of each."""

    id: str
    request_id: str
    names: tuple[str, ...]
    occupy: int
    holder: Holder
    acquired_at: float
    expires_at: float
    lease_seconds: float


@dataclass(slots=True)
class Waiter:
    """A request that could not be granted when it came, queued in arrival order."""

    request_id: str
    subscriber_id: str
    names: tuple[str, ...]
    occupy: int
    lease_seconds: float
    holder: Holder
    strict: bool


@dataclass(frozen=True, slots=True)
class Grant:
    """A request granted: `lease` is None when nothing is held (unlimited names, or only
    rate limits, whose use decays by itself)."""

    request_id: str
    subscriber_id: str
    lease: LeaseRecord | None
    expires_at: float | None

    @property
    def lease_id(self) -> str | None:
        return None if self.lease is None else self.lease.id


def holder_info(lease: LeaseRecord) -> HolderInfo:
    """A live lease as a limit's holder."""
    h = lease.holder
    return HolderInfo(
        lease.id, h.label, h.task_run_id, h.flow_run_id, h.host, h.pid, lease.occupy,
        lease.acquired_at, lease.expires_at,
    )
