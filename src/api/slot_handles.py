"""What a `SlotClient` hands its callers: a `Lease` (slots granted) and a `Ticket` (a request
that may still be waiting). Both are thin: the client owns the calls, the stream and the
renewals, and these only say which of its requests or leases they stand for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .slot_client import SlotClient


class Lease:
    """Slots granted on `names`, `occupy` of each, held until `release()` (the client renews
    them meanwhile). `lease_id` is None when nothing is held: none of the names has a
    concurrency limit, or only rate limits, whose use drains by itself. `lost` turns True
    once the server rejected a renewal: the lease expired (its process stalled past its lease
    time) or was reset, and the slots may be someone else's now."""

    __slots__ = ("_client", "lease_id", "names", "occupy", "expires_at", "lost", "_released")

    def __init__(
        self, client: SlotClient, lease_id: str | None, names: tuple[str, ...], occupy: int,
        expires_at: float | None,
    ) -> None:
        self._client = client
        self.lease_id, self.names, self.occupy = lease_id, names, occupy
        self.expires_at = expires_at
        self.lost = False
        self._released = False

    def release(self) -> None:
        """Give the slots back; idempotent, and never raises: a release the server rejects (the
        lease had expired) is logged as a warning."""
        self._client._release_lease(self)

    @property
    def released(self) -> bool:
        return self._released

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "lost" if self.lost else "released" if self._released else "held"
        return f"<Lease {self.lease_id or 'unlimited'} {list(self.names)} x{self.occupy} {state}>"


class Ticket:
    """A request for slots, queued or answered; for callers that must not block a thread.
    Its callbacks run once, on the thread that learns the answer (the caller's own when the
    server answers at once, else the client's stream thread), so they must be quick."""

    __slots__ = ("_client", "request_id", "names", "occupy", "body", "_on_grant", "_on_error", "state", "lease")

    def __init__(
        self, client: SlotClient, request_id: str, names: tuple[str, ...], occupy: int,
        body: dict[str, Any], on_grant: Callable[[Lease], None], on_error: Callable[[BaseException], None],
    ) -> None:
        self._client = client
        self.request_id, self.names, self.occupy, self.body = request_id, names, occupy, body
        self._on_grant, self._on_error = on_grant, on_error
        #: "waiting", "granted", "failed" or "cancelled"
        self.state = "waiting"
        self.lease: Lease | None = None

    def cancel(self) -> None:
        """Withdraw the request (`CancelWait`); if it was granted meanwhile, release the grant."""
        self._client._cancel(self)

    def done(self) -> bool:
        return self.state != "waiting"

    def __repr__(self) -> str:
        return f"<Ticket {self.request_id} {list(self.names)} x{self.occupy} {self.state}>"
