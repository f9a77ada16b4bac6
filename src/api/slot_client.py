"""`SlotClient`: concurrency slots from the state service, for one process.

    acquire(names) ─ Acquire ──> granted now ─────────────────────────> Lease
                                 queued: position ... grant pushed on ─> Lease
                                                      the SlotGrants stream

Each client holds one `SlotGrants` stream (a thread of its own reads it) and one renewer
thread; both start with the first call that needs them. The stream brings every grant of this
process's queued requests as it is made, and the current set of limit names (at connect and on
every create or delete), so `limited()` answers without a call. When the stream breaks, the
thread reconnects with backoff and sends `Acquire` again for every request still waiting,
under its original request id: a grant made while the stream was down comes back as that same
grant, never a second one. The server drops the waiting requests of a process whose stream
has been gone for 10 s.

The renewer renews every lease this client holds in one `Renew` call every lease_seconds / 3;
a lease the server rejects (expired, reset) is marked `lost` and dropped, with a warning.

Errors: `SlotUnavailable` for a request the limits can never grant (a limit of 0, more slots
than the limit, an unknown name with `strict=True`), `SlotTimeout` when `timeout` passes (the
request is withdrawn), `LimitNotFound` for a limit `read_limit` or `delete_limit` does not
know, and the state service's errors (`ServiceUnavailable` after `retry_for`) otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from ..errors import SlotTimeout, SlotUnavailable
from . import codec
from . import models as m
from .client import TRANSIENT, Target, UnaryCaller, _Call, invoke
from .errors import ServiceUnavailable, StateServiceError, slot_error_for_status
from .service import method_path
from .slot_handles import Lease, Ticket
from .slot_records import Holder, LimitInfo

log = logging.getLogger("headwater.slots")
T = TypeVar("T")


def _none(out: m.Empty) -> None:
    return None


def _limits(out: m.LimitsOut) -> list[LimitInfo]:
    return [codec.limit_info(limit) for limit in out.limits]


def _rejected(out: m.RejectedOut) -> list[str]:
    return list(out.rejected)


def _acquired(out: m.AcquireOut) -> m.AcquireOut:
    return out


CREATE_LIMIT = _Call("CreateLimit", m.LimitOut, codec.limit_info, write=True)
READ_LIMIT = _Call("ReadLimit", m.LimitOut, codec.limit_info)
LIST_LIMITS = _Call("ListLimits", m.LimitsOut, _limits)
RESET_LIMIT = _Call("ResetLimit", m.Empty, _none, write=True)
DELETE_LIMIT = _Call("DeleteLimit", m.Empty, _none, write=True)
ACQUIRE = _Call("Acquire", m.AcquireOut, _acquired, write=True)
RENEW = _Call("Renew", m.RejectedOut, _rejected, write=True)
RELEASE = _Call("Release", m.RejectedOut, _rejected, write=True)
CANCEL_WAIT = _Call("CancelWait", m.Empty, _none, write=True)


class SlotClient(UnaryCaller):
    """Slots for this process's callers; thread-safe. See the module docstring."""

    _error_for = staticmethod(slot_error_for_status)

    def __init__(
        self,
        target: Target | str | None = None,
        *,
        token: str | None = None,
        tls_ca: Path | None = None,
        timeout: float = 30.0,
        retry_for: float = 30.0,
        lease_seconds: float = 30.0,
    ) -> None:
        """`target` is a `Target` or a URL, resolved as `UnaryCaller` says."""
        super().__init__(target, token=token, tls_ca=tls_ca, timeout=timeout, retry_for=retry_for)
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds!r}")
        self.lease_seconds = float(lease_seconds)
        self.subscriber_id = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting: dict[str, Ticket] = {}
        self._held: dict[str, Lease] = {}
        self._names: frozenset[str] | None = None
        self._stream_error: BaseException | None = None
        self._stream: Any = None
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()

    # -- asking for slots ------------------------------------------------------------------

    def limited(self, names: Iterable[str]) -> tuple[str, ...]:
        """Which of `names` have a limit now, from the set the server pushes (the first call
        opens the stream and waits for that set; later calls make no call)."""
        self._ensure_stream()
        with self._lock:
            known = self._names or frozenset()
            return tuple(n for n in names if n in known)

    def acquire(
        self, names: Iterable[str], occupy: int = 1, *, timeout: float | None = None,
        holder: Holder | None = None, strict: bool = False,
    ) -> Lease:
        """Block until `occupy` slots of every limit in `names` are granted; `SlotTimeout`
        after `timeout` seconds (the request is withdrawn), `SlotUnavailable` at once for a
        request the limits can never grant."""
        done = threading.Event()
        box: list[Lease | BaseException] = []

        def settle(outcome: Lease | BaseException) -> None:
            box.append(outcome)
            done.set()

        started = time.monotonic()
        ticket = self.request(names, occupy, on_grant=settle, on_error=settle, holder=holder, strict=strict)
        if not done.wait(timeout):
            ticket.cancel()
            raise _timeout(ticket, time.monotonic() - started)
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    async def acquire_async(
        self, names: Iterable[str], occupy: int = 1, *, timeout: float | None = None,
        holder: Holder | None = None, strict: bool = False,
    ) -> Lease:
        """`acquire`, awaited: the event loop runs while the request waits (the first call
        is made on a worker thread, the grant comes from the stream thread)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Lease] = loop.create_future()

        def settle(outcome: Lease | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(_settle_future, future, outcome)
            except RuntimeError:  # the loop is closed: nobody waits any more
                if isinstance(outcome, Lease):
                    outcome.release()

        started = time.monotonic()
        ticket = await asyncio.to_thread(
            self.request, names, occupy, on_grant=settle, on_error=settle, holder=holder, strict=strict
        )
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            await asyncio.to_thread(ticket.cancel)
            raise _timeout(ticket, time.monotonic() - started) from None
        except asyncio.CancelledError:
            await asyncio.to_thread(ticket.cancel)
            raise

    def request(
        self, names: Iterable[str], occupy: int = 1, *, on_grant: Callable[[Lease], None],
        on_error: Callable[[BaseException], None], holder: Holder | None = None, strict: bool = False,
    ) -> Ticket:
        """Ask for slots without waiting for them: `on_grant(lease)` or `on_error(exc)` is
        called once, when the answer comes (see `Ticket`). Only bad arguments raise here."""
        wanted = _checked_names(names)
        if not isinstance(occupy, int) or occupy < 1:
            raise ValueError(f"occupy must be an int of at least 1, not {occupy!r}")
        who = holder if holder is not None else Holder("caller")
        request_id = uuid.uuid4().hex
        body = {
            "request_id": request_id, "subscriber_id": self.subscriber_id, "names": list(wanted),
            "occupy": occupy, "lease_seconds": self.lease_seconds,
            "holder": codec.holder_body(who), "strict": bool(strict),
        }
        ticket = Ticket(self, request_id, wanted, occupy, body, on_grant, on_error)
        try:
            self._ensure_stream()
        except Exception as exc:
            self._fail(ticket, exc)
            return ticket
        with self._lock:
            self._waiting[request_id] = ticket
        self._send(ticket)
        return ticket

    def rate_limit(
        self, names: Iterable[str], occupy: int = 1, *, timeout: float | None = None, strict: bool = False
    ) -> None:
        """Block until the rate limits among `names` admit `occupy` more (their use then
        drains by itself); a concurrency limit among them is taken and given back at once."""
        lease = self.acquire(names, occupy, timeout=timeout, strict=strict, holder=Holder("rate limit"))
        lease.release()

    # -- limits ----------------------------------------------------------------------------

    def create_limit(self, name: str, limit: int, *, slot_decay_per_second: float = 0.0) -> LimitInfo:
        """Create a limit, or change an existing one's size and decay. This client limits by
        it at once; other processes as soon as the server's push reaches them."""
        info: LimitInfo = self._call(CREATE_LIMIT, {
            "name": name, "limit": int(limit), "slot_decay_per_second": float(slot_decay_per_second),
        })  # fmt: skip
        with self._lock:
            if self._names is not None:
                self._names = self._names | {name}
        return info

    def read_limit(self, name: str) -> LimitInfo:
        return self._call(READ_LIMIT, {"name": name})

    def list_limits(self) -> list[LimitInfo]:
        return self._call(LIST_LIMITS, {})

    def reset_limit(self, name: str) -> None:
        """Free every lease on `name` (their holders' renewals and releases are rejected)."""
        return self._call(RESET_LIMIT, {"name": name})

    def delete_limit(self, name: str) -> None:
        self._call(DELETE_LIMIT, {"name": name})
        with self._lock:
            if self._names is not None:
                self._names = self._names - {name}

    def renew_leases(self, lease_ids: Iterable[str], lease_seconds: float | None = None) -> list[str]:
        """Renew leases by id (the renewer does this for held `Lease`s); the rejected ids."""
        seconds = None if lease_seconds is None else float(lease_seconds)
        return self._call(RENEW, {"lease_ids": list(lease_ids), "lease_seconds": seconds})

    def release_leases(self, lease_ids: Iterable[str]) -> list[str]:
        """Release leases by id; the ids the server rejected (unknown or expired)."""
        return self._call(RELEASE, {"lease_ids": list(lease_ids)})

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Withdraw this client's waiting requests, release the leases it holds, stop its
        threads and close its channel. Leases held through other clients are untouched."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._lock:
            tickets, self._waiting = list(self._waiting.values()), {}
            leases, self._held = list(self._held.values()), {}
            stream = self._stream
            self._changed.notify_all()
        try:
            for ticket in tickets:
                ticket.state = "cancelled"
                self._call_briefly(CANCEL_WAIT, {"request_id": ticket.request_id})
            held = [lease.lease_id for lease in leases if lease.lease_id and not lease.lost]
            for lease in leases:
                lease._released = True
            if held:
                self._call_briefly(RELEASE, {"lease_ids": held})
        except StateServiceError as exc:
            log.warning("closing a slot client: %s", exc)
        finally:
            if stream is not None:
                stream.cancel()
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join(2)
            super().close()

    def _call_briefly(self, call: _Call[T], body: dict[str, Any]) -> T:
        """A call that waits at most a few seconds for a server that is away (closing: what
        is left on the server expires by itself)."""
        stub = self._channel.unary_unary(method_path(call.method))
        return invoke(
            stub, call, body, self._metadata, timeout=self._timeout, retry_for=min(2.0, self._retry_for),
            error_for=self._error_for,
        )  # fmt: skip

    # -- the stream ------------------------------------------------------------------------

    def _ensure_stream(self) -> None:
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("this SlotClient is closed")
            if not self._threads:
                self._start_thread(self._stream_loop, "headwater-slot-stream")
                self._start_thread(self._renew_loop, "headwater-slot-renewer")
            deadline = time.monotonic() + self._retry_for
            while self._names is None:
                if self._stream_error is not None:
                    raise self._stream_error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServiceUnavailable(
                        f"SlotGrants: the state service at {self.target.url} did not answer "
                        f"within {self._retry_for:g} s"
                    )
                self._changed.wait(left)

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _stream_loop(self) -> None:
        stub = self._channel.unary_stream(method_path("SlotGrants"))
        request = codec.pack({"subscriber_id": self.subscriber_id})
        delay = 0.05
        while not self._closed.is_set():
            connected = False
            try:
                call = stub(request, metadata=self._metadata)
                with self._lock:
                    self._stream = call
                for data in call:
                    push = codec.decode(m.SlotPush, data, max_bytes=codec.MAX_GRPC_MESSAGE)
                    if not connected:
                        connected, delay = True, 0.05
                        self._connected()
                    self._on_push(push)
            except grpc.RpcError as exc:
                if self._closed.is_set():
                    return
                code = exc.code()
                if code not in TRANSIENT and code != grpc.StatusCode.CANCELLED:
                    self._stream_failed(self._error_for(code, exc.details() or ""))
            except StateServiceError as exc:  # a push that does not decode
                self._stream_failed(exc)
            if self._closed.wait(delay):
                return
            delay = min(delay * 2, 2.0)

    def _stream_failed(self, exc: BaseException) -> None:
        log.warning("slot grants stream from %s failed: %s; reconnecting", self.target.url, exc)
        with self._lock:
            self._stream_error = exc
            self._changed.notify_all()

    def _connected(self) -> None:
        """(Re)connected: requests still waiting are sent again, under their own ids, so any
        grant made while the stream was down comes back (a thread of its own, so pushes keep
        being read meanwhile)."""
        with self._lock:
            self._stream_error = None
            again = list(self._waiting.values())
        if again:
            threading.Thread(target=self._send_all, args=(again,), name="headwater-slot-resend", daemon=True).start()

    def _send_all(self, tickets: list[Ticket]) -> None:
        for ticket in tickets:
            self._send(ticket)

    def _on_push(self, push: m.SlotPush) -> None:
        if push.limits is not None:
            with self._lock:
                self._names = frozenset(push.limits)
                self._changed.notify_all()
        if push.grant is not None:
            with self._lock:
                ticket = self._waiting.get(push.grant.request_id)
            if ticket is not None:
                self._granted(ticket, push.grant.lease_id, push.grant.expires_at)
        if push.error is not None:
            with self._lock:
                ticket = self._waiting.get(push.error.request_id)
            if ticket is not None:
                self._fail(ticket, SlotUnavailable(push.error.message))

    # -- one request's life ----------------------------------------------------------------

    def _send(self, ticket: Ticket) -> None:
        try:
            reply: m.AcquireOut = self._call(ACQUIRE, ticket.body)
        except ServiceUnavailable:
            return  # still waiting: sent again when the stream reconnects
        except Exception as exc:
            self._fail(ticket, exc)
            return
        if reply.granted is not None:
            self._granted(ticket, reply.granted.lease_id, reply.granted.expires_at)

    def _granted(self, ticket: Ticket, lease_id: str | None, expires_at: float | None) -> None:
        lease = Lease(self, lease_id, ticket.names, ticket.occupy, expires_at)
        with self._lock:
            if ticket.state != "waiting":
                stale = ticket.state == "cancelled" and lease_id is not None and lease_id not in self._held
                taken = False
            else:
                stale, taken = False, True
                ticket.state, ticket.lease = "granted", lease
                self._waiting.pop(ticket.request_id, None)
                if lease_id is not None:
                    self._held[lease_id] = lease
        if stale:  # granted after it was withdrawn: give it straight back
            self._release_quietly([lease_id])  # type: ignore[list-item]
        if taken:
            ticket._on_grant(lease)

    def _fail(self, ticket: Ticket, exc: BaseException) -> None:
        with self._lock:
            if ticket.state != "waiting":
                return
            ticket.state = "failed"
            self._waiting.pop(ticket.request_id, None)
        ticket._on_error(exc)

    def _cancel(self, ticket: Ticket) -> None:
        with self._lock:
            state = ticket.state
            if state == "waiting":
                ticket.state = "cancelled"
                self._waiting.pop(ticket.request_id, None)
        if state == "waiting":
            try:
                self._call(CANCEL_WAIT, {"request_id": ticket.request_id})
            except StateServiceError as exc:
                log.warning("could not withdraw slot request %s: %s", ticket.request_id, exc)
        elif state == "granted" and ticket.lease is not None:
            ticket.lease.release()

    def _release_lease(self, lease: Lease) -> None:
        with self._lock:
            if lease._released:
                return
            lease._released = True
            self._held.pop(lease.lease_id or "", None)
        if lease.lease_id is not None and not lease.lost:
            self._release_quietly([lease.lease_id])

    def _release_quietly(self, lease_ids: list[str]) -> None:
        try:
            rejected = self.release_leases(lease_ids)
        except StateServiceError as exc:
            log.warning("could not release slot leases %s: %s; they expire by themselves", lease_ids, exc)
            return
        for lease_id in rejected:
            log.warning(
                "slot lease %s was no longer held when released (it expired or its limit was "
                "reset); its slots may have been granted to another holder meanwhile", lease_id,
            )

    # -- renewing --------------------------------------------------------------------------

    def _renew_loop(self) -> None:
        while not self._closed.wait(self.lease_seconds / 3):
            with self._lock:
                ids = list(self._held)
            if not ids:
                continue
            try:
                rejected = self.renew_leases(ids, self.lease_seconds)
            except StateServiceError as exc:
                log.warning("could not renew %d slot leases: %s; trying again", len(ids), exc)
                continue
            for lease_id in rejected:
                with self._lock:
                    lease = self._held.pop(lease_id, None)
                if lease is not None:
                    lease.lost = True
                    log.warning(
                        "slot lease %s on %s was lost (it expired or its limit was reset); "
                        "its slots may be someone else's now", lease_id, ", ".join(lease.names),
                    )


def _checked_names(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    wanted = tuple(dict.fromkeys(names))
    if not wanted:
        raise ValueError("name at least one concurrency limit to take slots of")
    for name in wanted:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a concurrency limit's name is a non-empty str, not {name!r}")
    return wanted


def _timeout(ticket: Ticket, waited: float) -> SlotTimeout:
    names = ", ".join(repr(n) for n in ticket.names)
    return SlotTimeout(
        f"waited {waited:.1f} s for {ticket.occupy} slot(s) of concurrency limit(s) {names} "
        f"without a grant; the request was withdrawn (see who holds them: "
        f"`headwater concurrency-limit inspect NAME`)"
    )


def _settle_future(future: asyncio.Future[Lease], outcome: Lease | BaseException) -> None:
    if future.done():
        if isinstance(outcome, Lease):
            outcome.release()  # the awaiting task gave up meanwhile
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
