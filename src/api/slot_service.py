"""The concurrency slot calls of the state service: limits, leases, the wait queue and the
`SlotGrants` stream that pushes grants to waiting processes.

One lock serializes every decision over the ledger (`slot_ledger.py`, pure) and the write that
makes it durable (`slot_store.py`): a lease is stored before its grant is answered or pushed,
so a restarted server still knows it. What a call changes (a release, an expiry, a limit raised
or deleted, a reset, a waiter's process coming back) ends with a walk of the queue, and every
grant it makes is pushed at once on its process's stream, so a waiter costs no server thread
and no polling: each subscribed process holds one stream (one server thread), however many
requests it has queued.

Timers: one thread (`_reap_loop`) sleeps until the next thing that happens by itself: a lease
expiring, a rate limit draining enough for the first waiter that wants it, a vanished
process's waiters falling due to be dropped (10 s after its stream broke). While requests
wait it also wakes at least once a second to read the store's change counter, so a limit
created or reset by the CLI straight in the database reaches them; every call reads it too.

Handlers are `bytes -> dict` like the rest of `StateService`, which wraps them in its
authorization and error mapping; `SLOT_WRITES` carry a request id, so a retry whose reply
was lost gets the original reply.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc

from ..errors import SlotUnavailable
from . import codec
from . import models as m
from .errors import StorageError
from .slot_ledger import SlotLedger
from .slot_records import Grant, Waiter
from .slot_store import SlotStore, limit_not_found

log = logging.getLogger(__name__)

Handler = Callable[[bytes], dict[str, Any]]

#: Calls that change the ledger: retried with one request id (`service._Replies`).
SLOT_WRITES = frozenset(
    {"CreateLimit", "ResetLimit", "DeleteLimit", "Acquire", "Renew", "Release", "CancelWait"}
)
#: How long a process's queued requests outlive its broken `SlotGrants` stream.
SUBSCRIBER_GRACE = 10.0
#: How often, at most, waiting requests look for limits changed straight in the database.
EXTERNAL_CHECK = 1.0


class _Subscriber:
    """One client process: the stream its grants go out on, while it is connected."""

    __slots__ = ("id", "outbox", "connected", "gone_since")

    def __init__(self, subscriber_id: str, *, connected: bool, now: float) -> None:
        self.id = subscriber_id
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.connected = connected
        self.gone_since = now


class SlotService:
    """Limits and leases over the database at `path`; see the module docstring."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        # Leases live seconds and are renewed every few: WAL with NORMAL keeps them across a
        # crash of this process (what a restart must survive) without an fsync per acquire and
        # release, which was most of their cost; an OS crash may lose the last few, whose
        # holders then find their renewals rejected. Limits are written the same way.
        lease_sync = "NORMAL" if synchronous.upper() in ("FULL", "EXTRA") else synchronous
        self._store = SlotStore(path, synchronous=lease_sync, beside_storage=True)
        self._lock = threading.Lock()
        self._timer = threading.Condition(self._lock)
        self._ledger = SlotLedger()
        self._subscribers: dict[str, _Subscriber] = {}
        self._ending = False  # `end_streams` was called: new streams end at once
        self._generation = -1
        self._names: frozenset[str] = frozenset()
        self._closed = False
        self._checked_at = time.time()
        with self._lock:
            self._refresh()
        self._reaper = threading.Thread(target=self._reap_loop, name="headwater-slot-timer", daemon=True)
        self._reaper.start()

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateLimit": self.create_limit, "ReadLimit": self.read_limit,
            "ListLimits": self.list_limits, "ResetLimit": self.reset_limit,
            "DeleteLimit": self.delete_limit, "Acquire": self.acquire, "Renew": self.renew,
            "Release": self.release, "CancelWait": self.cancel_wait,
        }  # fmt: skip

    def end_streams(self) -> None:
        """End every `SlotGrants` stream, and any that starts from now on (the server is
        stopping; clients reconnect)."""
        with self._lock:
            self._ending = True
            for sub in self._subscribers.values():
                sub.outbox.put(None)

    def close(self) -> None:
        self.end_streams()
        with self._lock:
            self._closed = True
            self._timer.notify()
        self._reaper.join(5)
        self._store.close()

    # -- limits ----------------------------------------------------------------------------

    def create_limit(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.LimitIn, data)
        with self._lock:
            self._refresh()
            before = self._store.generation()
            spec = self._store.put_limit(body.name, body.limit, body.slot_decay_per_second)
            self._ledger.set_limit(spec)
            self._wrote(before)
            self._settle(time.time())
            return self._info(body.name)

    def read_limit(self, data: bytes) -> dict[str, Any]:
        name = codec.decode(m.LimitNameIn, data).name
        with self._lock:
            self._refresh()
            return self._info(name)

    def list_limits(self, data: bytes) -> dict[str, Any]:
        codec.decode(m.Empty, data)
        with self._lock:
            self._refresh()
            return {"limits": [self._info(name) for name in sorted(self._ledger.limits)]}

    def reset_limit(self, data: bytes) -> dict[str, Any]:
        name = codec.decode(m.LimitNameIn, data).name
        with self._lock:
            self._refresh()
            self._info(name)  # LimitNotFound
            before = self._store.generation()
            self._store.reset(name)
            self._ledger.reset(name)
            self._wrote(before)
            self._settle(time.time())
            return {}

    def delete_limit(self, data: bytes) -> dict[str, Any]:
        name = codec.decode(m.LimitNameIn, data).name
        with self._lock:
            self._refresh()
            before = self._store.generation()
            if not self._store.delete_limit(name):
                raise limit_not_found(name)
            self._ledger.delete_limit(name)
            self._wrote(before)
            self._settle(time.time())
            return {}

    def _info(self, name: str) -> dict[str, Any]:
        info = self._ledger.info(name, time.time())
        if info is None:
            raise limit_not_found(name)
        return codec.limit_info_body(info)

    # -- acquiring and holding -------------------------------------------------------------

    def acquire(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.AcquireIn, data)
        names = tuple(dict.fromkeys(body.names))  # each name once, in the order given
        waiter = Waiter(
            body.request_id, body.subscriber_id, names, body.occupy, body.lease_seconds,
            codec.holder_of(body.holder), body.strict,
        )
        with self._lock:
            self._refresh()
            now = time.time()
            sub = self._subscribers.get(body.subscriber_id)
            if sub is None:  # asked before its stream came up: away until it does
                self._subscribers[body.subscriber_id] = _Subscriber(body.subscriber_id, connected=False, now=now)
                self._timer.notify()
            known = self._ledger.known(body.request_id)
            if isinstance(known, Grant):
                return {"granted": codec.grant_body(known)}
            if known is not None:
                self._ledger.requeue(body.request_id, body.subscriber_id)
                return {"queued": known}
            problem = self._ledger.refusal(names, body.occupy, body.strict)
            if problem is not None:
                raise SlotUnavailable(problem)
            outcome = self._ledger.try_grant(waiter, now)
            if isinstance(outcome, int):
                self._settle(now)  # works out when a rate limit will have drained for it
                return {"queued": outcome}
            if outcome.lease is not None:
                try:
                    self._store.add_leases([outcome.lease])
                except BaseException:
                    self._ledger.cancel(body.request_id)
                    raise
                self._timer.notify()
            return {"granted": codec.grant_body(outcome)}

    def renew(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.LeaseIdsIn, data)
        with self._lock:
            self._refresh()
            renewed, rejected = self._ledger.renew(body.lease_ids, body.lease_seconds, time.time())
            self._store.renew(renewed)
            return {"rejected": rejected}

    def release(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.LeaseIdsIn, data)
        with self._lock:
            self._refresh()
            now = time.time()
            released, rejected = self._ledger.release(body.lease_ids, now)
            if released:
                self._settle(now, deleted=released)  # one commit for the release and its grants
            return {"rejected": rejected}

    def cancel_wait(self, data: bytes) -> dict[str, Any]:
        request_id = codec.decode(m.RequestIdIn, data).request_id
        with self._lock:
            self._refresh()
            freed = self._ledger.cancel(request_id)
            # A waiter gone from the queue may have reserved names others wait for.
            self._settle(time.time(), deleted=() if freed is None else (freed,))
            return {}

    # -- the grants stream -----------------------------------------------------------------

    def grants(self, data: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """`SlotGrants`: the limit names now, then every grant or refusal of this process's
        queued requests, and the names again whenever a limit is created or deleted."""
        subscriber_id = codec.decode(m.SubscriberIn, data).subscriber_id
        with self._lock:
            self._refresh()
            sub = _Subscriber(subscriber_id, connected=True, now=time.time())
            old = self._subscribers.get(subscriber_id)
            if old is not None:
                old.outbox.put(None)  # a stream the process gave up on
            self._subscribers[subscriber_id] = sub
            sub.outbox.put(codec.pack({"limits": sorted(self._names)}))
            self._settle(time.time())  # its waiters may be granted again
        if not context.add_callback(lambda: sub.outbox.put(None)) or self._ending:
            sub.outbox.put(None)  # the call ended before it got here: the callback never runs
        try:
            while (item := sub.outbox.get()) is not None:
                yield item
        finally:
            with self._lock:
                if self._subscribers.get(subscriber_id) is sub:
                    sub.connected, sub.gone_since = False, time.time()
                    self._timer.notify()

    # -- internals (call with the lock held) -----------------------------------------------

    def _refresh(self) -> None:
        """Reload limits and leases if someone else changed them in the database."""
        generation = self._store.generation()
        if generation != self._generation:
            self._ledger.load(self._store.limits(), self._store.leases())
            self._generation = generation
            self._settle(time.time())

    def _wrote(self, before: int) -> None:
        """After our own change: adopt the new generation unless another writer's came too."""
        if self._generation == before:
            self._generation = self._store.generation()
            if self._generation != before + 1:
                self._generation = -1  # someone else wrote meanwhile: reload next time

    def _settle(self, now: float, deleted: Iterable[str] = ()) -> None:
        """Walk the queue after a change: store its grants (with the deletion of the `deleted`
        leases that made room, in one transaction) and push them, push its refusals, and
        announce the limit names if they changed."""
        names = frozenset(self._ledger.limits)
        if names != self._names:
            self._names = names
            message = codec.pack({"limits": sorted(names)})
            for sub in self._subscribers.values():
                if sub.connected:
                    sub.outbox.put(message)
        grants, refused = self._ledger.walk(now, self._eligible)
        leases = [g.lease for g in grants if g.lease is not None]
        try:
            self._store.change_leases(deleted, leases)
        except StorageError:  # the grants stand in memory; a restart would not know them
            log.exception("could not store %d granted leases", len(leases))
        for grant in grants:
            self._push(grant.subscriber_id, {"grant": {"request_id": grant.request_id, **codec.grant_body(grant)}})
        for waiter, problem in refused:
            self._push(waiter.subscriber_id, {"error": {"request_id": waiter.request_id, "message": problem}})
        self._timer.notify()

    def _eligible(self, waiter: Waiter) -> bool:
        sub = self._subscribers.get(waiter.subscriber_id)
        return sub is not None and sub.connected

    def _push(self, subscriber_id: str, message: dict[str, Any]) -> None:
        sub = self._subscribers.get(subscriber_id)
        if sub is not None and sub.connected:
            sub.outbox.put(codec.pack(message))

    # -- the timer -------------------------------------------------------------------------

    def _reap_loop(self) -> None:
        with self._lock:
            while not self._closed:
                due = self._due()
                now = time.time()
                if due is not None and due <= now:
                    try:
                        self._tick(now)
                    except Exception:
                        log.exception("slot timer failed; trying again in a second")
                        self._timer.wait(1.0)
                    continue
                self._timer.wait(None if due is None else due - now)

    def _due(self) -> float | None:
        times = [self._ledger.next_wake()]
        times += [s.gone_since + SUBSCRIBER_GRACE for s in self._subscribers.values() if not s.connected]
        if self._ledger.queue:
            times.append(self._checked_at + EXTERNAL_CHECK)
        found = [t for t in times if t is not None]
        return min(found) if found else None

    def _tick(self, now: float) -> None:
        """Expire leases, drop the waiters of processes away too long, look for external
        changes, and walk the queue."""
        expired = self._ledger.expire(now)
        for sub in [s for s in self._subscribers.values() if not s.connected]:
            if now >= sub.gone_since + SUBSCRIBER_GRACE:
                self._ledger.drop_waiters(sub.id)
                del self._subscribers[sub.id]
        self._checked_at = now
        self._settle(now, deleted=expired)
        self._refresh()

