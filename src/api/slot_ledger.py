"""The slot ledger: limits, live leases and the one arrival-ordered queue. Pure: no I/O, no
locks, no clock (every method is given `now`); `slot_service.py` serializes calls and stores
what changes.

State:
- `limits`: name -> `LimitSpec`; a rate limit (decay > 0) also has a decaying `used`, drained
  lazily: used(t) = max(0, used(t0) - decay * (t - t0)).
- `leases`: id -> `LeaseRecord`; `held[name]` is the sum of `occupy` over the live leases
  holding `name`, kept as leases come and go, so a count is always derived from leases.
- `queue`: request id -> `Waiter`, in arrival order.
- `outcomes`: recent request id -> `Grant`, so a request sent again (its grant was pushed on a
  stream that broke) gets the same grant instead of a second one.

The invariant: for every limit, held + used <= limit after every method, since a grant is made
only when it fits on every name it names (`_fits`).

Fairness (`walk`): on every change the queue is walked in order; a waiter that fits is
granted; one that does not reserves its limited names, and no later waiter touching any of
them is granted past it (its own names are reserved too), so a request for many slots is not
starved by a stream of small ones behind it. Waiters whose process is away are passed over
without reserving (`eligible`).
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .slot_records import Grant, LeaseRecord, LimitInfo, LimitSpec, Waiter, holder_info

#: Request ids remembered with their grant, for requests sent again after a broken stream.
OUTCOMES_KEPT = 65_536


def fix_hint(name: str, occupy: int) -> str:
    return f"`headwater concurrency-limit create {name} N` with N >= {occupy}"


@dataclass(slots=True)
class _Usage:
    """A rate limit's decaying use, as of `at`."""

    used: float = 0.0
    at: float = 0.0

    def now(self, decay: float, now: float) -> float:
        return max(0.0, self.used - decay * max(0.0, now - self.at))


class SlotLedger:
    """Limits, leases and waiters; see the module docstring."""

    def __init__(self) -> None:
        self.limits: dict[str, LimitSpec] = {}
        self.leases: dict[str, LeaseRecord] = {}
        self.queue: OrderedDict[str, Waiter] = OrderedDict()
        self.held: dict[str, int] = {}
        self._usage: dict[str, _Usage] = {}
        self._outcomes: OrderedDict[str, Grant] = OrderedDict()
        self._expiries: list[tuple[float, str]] = []  # heap; stale entries skipped lazily
        self._decay_wake: float | None = None

    # -- limits ----------------------------------------------------------------------------

    def load(self, limits: Iterable[LimitSpec], leases: Iterable[LeaseRecord]) -> None:
        """Replace the limits, and keep only the leases in `leases` (others were freed by
        someone else, e.g. `reset` from the CLI); leases not yet known are adopted."""
        self.limits = {spec.name: spec for spec in limits}
        for name in list(self._usage):
            spec = self.limits.get(name)
            if spec is None or spec.slot_decay_per_second == 0:
                del self._usage[name]
        stored = {lease.id: lease for lease in leases}
        for lease_id in [i for i in self.leases if i not in stored]:
            self._drop(lease_id)
        for lease_id, lease in stored.items():
            if lease_id not in self.leases:
                self._add(lease)

    def set_limit(self, spec: LimitSpec) -> None:
        self.limits[spec.name] = spec
        if spec.slot_decay_per_second == 0:
            self._usage.pop(spec.name, None)

    def delete_limit(self, name: str) -> bool:
        self._usage.pop(name, None)
        return self.limits.pop(name, None) is not None

    def reset(self, name: str) -> list[str]:
        """Free every lease holding `name` (whole leases) and its decaying use; the freed ids."""
        self._usage.pop(name, None)
        freed = [lease.id for lease in self.leases.values() if name in lease.names]
        for lease_id in freed:
            self._drop(lease_id)
        return freed

    def info(self, name: str, now: float) -> LimitInfo | None:
        spec = self.limits.get(name)
        if spec is None:
            return None
        holders = [holder_info(lease) for lease in self.leases.values() if name in lease.names]
        holders.sort(key=lambda h: h.acquired_at)
        waiting = sum(1 for w in self.queue.values() if name in w.names)
        return LimitInfo(
            spec.name, spec.limit, spec.slot_decay_per_second, self.active(name, now), waiting,
            holders, spec.created,
        )

    def active(self, name: str, now: float) -> int:
        """Slots in use on `name`: held by leases, plus decaying use rounded up."""
        return self.held.get(name, 0) + math.ceil(self._used(name, now) - 1e-9)

    # -- acquiring -------------------------------------------------------------------------

    def refusal(self, names: Iterable[str], occupy: int, strict: bool) -> str | None:
        """Why a request can never be granted as the limits stand, or None."""
        for name in names:
            spec = self.limits.get(name)
            if spec is None:
                if strict:
                    return (
                        f"no concurrency limit named {name}; create it with "
                        f"`headwater concurrency-limit create {name} N`"
                    )
            elif spec.limit == 0:
                return (
                    f"concurrency limit {name!r} is 0, so nothing may take a slot of it; "
                    f"raise it with {fix_hint(name, occupy)}"
                )
            elif occupy > spec.limit:
                return (
                    f"{occupy} slots asked of concurrency limit {name!r}, which has only "
                    f"{spec.limit}; raise it with {fix_hint(name, occupy)}, or ask for fewer"
                )
        return None

    def known(self, request_id: str) -> Grant | int | None:
        """A request sent again: its grant, its queue position (from 1), or None if new."""
        grant = self._outcomes.get(request_id)
        if grant is not None:
            lease = grant.lease
            if lease is not None and lease.id in self.leases:
                return Grant(grant.request_id, grant.subscriber_id, lease, lease.expires_at)
            return grant
        if request_id in self.queue:
            return list(self.queue).index(request_id) + 1
        return None

    def requeue(self, request_id: str, subscriber_id: str) -> None:
        """A queued request sent again by a process that reconnected as `subscriber_id`."""
        self.queue[request_id].subscriber_id = subscriber_id

    def try_grant(self, waiter: Waiter, now: float) -> Grant | int:
        """Grant `waiter` now if it fits and nobody queued before it wants its names; else
        queue it and return its position (from 1). Call `refusal` first."""
        limited = self._limited(waiter.names)
        queued_names = {n for w in self.queue.values() for n in self._limited(w.names)}
        if not queued_names.intersection(limited) and self._fits(limited, waiter.occupy, now):
            return self._grant(waiter, limited, now)
        self.queue[waiter.request_id] = waiter
        return len(self.queue)

    def walk(self, now: float, eligible: Callable[[Waiter], bool]) -> tuple[list[Grant], list[tuple[Waiter, str]]]:
        """Grant every queued request that fits, in order, reserving the names of those that
        do not; refuse those the limits now make impossible. Returns (grants, refusals)."""
        grants: list[Grant] = []
        refused: list[tuple[Waiter, str]] = []
        reserved: set[str] = set()
        self._decay_wake = None
        for request_id, waiter in list(self.queue.items()):
            problem = self.refusal(waiter.names, waiter.occupy, waiter.strict)
            if problem is not None:
                del self.queue[request_id]
                refused.append((waiter, problem))
                continue
            if not eligible(waiter):
                continue
            limited = self._limited(waiter.names)
            if reserved.intersection(limited):
                reserved.update(limited)
                continue
            if not self._fits(limited, waiter.occupy, now):
                reserved.update(limited)
                self._note_decay_wake(limited, waiter.occupy, now)
                continue
            del self.queue[request_id]
            grants.append(self._grant(waiter, limited, now))
        return grants, refused

    def cancel(self, request_id: str) -> str | None:
        """Drop a queued request; if it was granted a lease, free it and return its id."""
        if self.queue.pop(request_id, None) is not None:
            return None
        grant = self._outcomes.pop(request_id, None)
        if grant is not None and grant.lease is not None and grant.lease.id in self.leases:
            self._drop(grant.lease.id)
            return grant.lease.id
        return None

    def drop_waiters(self, subscriber_id: str) -> int:
        gone = [rid for rid, w in self.queue.items() if w.subscriber_id == subscriber_id]
        for request_id in gone:
            del self.queue[request_id]
        return len(gone)

    # -- holding ---------------------------------------------------------------------------

    def renew(self, lease_ids: Iterable[str], lease_seconds: float | None, now: float) -> tuple[list[LeaseRecord], list[str]]:
        """Extend live leases (by their own lease time unless given); (renewed, rejected ids)."""
        renewed, rejected = [], []
        for lease_id in lease_ids:
            lease = self.leases.get(lease_id)
            if lease is None or lease.expires_at <= now:
                rejected.append(lease_id)
                continue
            if lease_seconds is not None:
                lease.lease_seconds = lease_seconds
            lease.expires_at = now + lease.lease_seconds
            heapq.heappush(self._expiries, (lease.expires_at, lease.id))
            renewed.append(lease)
        return renewed, rejected

    def release(self, lease_ids: Iterable[str], now: float) -> tuple[list[str], list[str]]:
        """Free leases; (released ids, rejected ids). A lease past its expiry is rejected even
        if the reaper has not freed it yet: its holder lost it."""
        released, rejected = [], []
        for lease_id in lease_ids:
            lease = self.leases.get(lease_id)
            if lease is None or lease.expires_at <= now:
                rejected.append(lease_id)
            else:
                self._drop(lease_id)
                released.append(lease_id)
        return released, rejected

    def expire(self, now: float) -> list[str]:
        """Free every lease whose time ran out; their ids."""
        expired = []
        while self._expiries and self._expiries[0][0] <= now:
            at, lease_id = heapq.heappop(self._expiries)
            lease = self.leases.get(lease_id)
            if lease is not None and lease.expires_at <= now:
                self._drop(lease_id)
                expired.append(lease_id)
        return expired

    def next_wake(self) -> float | None:
        """When something changes by itself next: a lease expires, or a blocked waiter's rate
        limits have drained enough (as of the last `walk`)."""
        while self._expiries:
            at, lease_id = self._expiries[0]
            lease = self.leases.get(lease_id)
            if lease is not None and lease.expires_at == at:
                break
            heapq.heappop(self._expiries)  # stale: renewed, released or reset since
        times = [t for t in (self._expiries[0][0] if self._expiries else None, self._decay_wake) if t is not None]
        return min(times) if times else None

    # -- internals -------------------------------------------------------------------------

    def _limited(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(n for n in names if n in self.limits)

    def _used(self, name: str, now: float) -> float:
        usage = self._usage.get(name)
        spec = self.limits.get(name)
        if usage is None or spec is None:
            return 0.0
        return usage.now(spec.slot_decay_per_second, now)

    def _fits(self, limited: Iterable[str], occupy: int, now: float) -> bool:
        return all(
            self.held.get(n, 0) + self._used(n, now) + occupy <= self.limits[n].limit + 1e-9
            for n in limited
        )

    def _note_decay_wake(self, limited: Iterable[str], occupy: int, now: float) -> None:
        """When the rate limits among `limited` will have drained enough for `occupy`."""
        wake = now
        for name in limited:
            spec = self.limits[name]
            room = spec.limit - self.held.get(name, 0) - occupy
            excess = self._used(name, now) - room
            if excess <= 0:
                continue
            if spec.slot_decay_per_second == 0 or room < 0:
                return  # only a release can make room, and a release walks the queue again
            wake = max(wake, now + excess / spec.slot_decay_per_second)
        if wake > now and (self._decay_wake is None or wake < self._decay_wake):
            self._decay_wake = wake

    def _grant(self, waiter: Waiter, limited: tuple[str, ...], now: float) -> Grant:
        held = tuple(n for n in limited if self.limits[n].slot_decay_per_second == 0)
        for name in limited:
            spec = self.limits[name]
            if spec.slot_decay_per_second > 0:
                usage = self._usage.setdefault(name, _Usage())
                usage.used, usage.at = usage.now(spec.slot_decay_per_second, now) + waiter.occupy, now
        lease = None
        if held:
            lease = LeaseRecord(
                uuid.uuid4().hex, waiter.request_id, held, waiter.occupy, waiter.holder, now,
                now + waiter.lease_seconds, waiter.lease_seconds,
            )
            self._add(lease)
        grant = Grant(waiter.request_id, waiter.subscriber_id, lease, None if lease is None else lease.expires_at)
        self._outcomes[waiter.request_id] = grant
        if len(self._outcomes) > OUTCOMES_KEPT:
            self._outcomes.popitem(last=False)
        return grant

    def _add(self, lease: LeaseRecord) -> None:
        self.leases[lease.id] = lease
        for name in lease.names:
            self.held[name] = self.held.get(name, 0) + lease.occupy
        heapq.heappush(self._expiries, (lease.expires_at, lease.id))
        if lease.request_id and lease.request_id not in self._outcomes:
            self._outcomes[lease.request_id] = Grant(lease.request_id, "", lease, lease.expires_at)

    def _drop(self, lease_id: str) -> None:
        lease = self.leases.pop(lease_id)
        for name in lease.names:
            left = self.held.get(name, 0) - lease.occupy
            if left > 0:
                self.held[name] = left
            else:
                self.held.pop(name, None)

