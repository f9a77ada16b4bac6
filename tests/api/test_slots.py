"""Concurrency slots on a real in-process `StateServer`: refusals, fairness, every way a slot
comes back, rate limits, pushed limit names and grant latency. No mocks."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from headwater.api import (
    Holder,
    Lease,
    LimitNotFound,
    SlotClient,
    SlotTimeout,
    SlotUnavailable,
    StateServer,
)
from headwater.api.slot_client import ACQUIRE

from .conftest import TOKEN


@pytest.fixture
def slots(server: StateServer) -> Iterator[SlotClient]:
    with SlotClient(server.url, token=TOKEN, retry_for=2.0, lease_seconds=3.0) as c:
        yield c


def _raw_acquire(client: SlotClient, names: list[str], lease_seconds: float, request_id: str | None = None) -> str | None:
    """An Acquire from a holder that will never renew (no client behind it): what a process
    that died holding a slot leaves on the server."""
    reply = client._call(ACQUIRE, {
        "request_id": request_id or uuid.uuid4().hex, "subscriber_id": uuid.uuid4().hex,
        "names": names, "occupy": 1, "lease_seconds": lease_seconds, "holder": {"label": "ghost"},
    })  # fmt: skip
    assert reply.granted is not None
    return reply.granted.lease_id


def _queue(
    client: SlotClient, names: list[str], occupy: int, order: list[str], tag: str,
    got: dict[str, Lease] | None = None,
) -> dict[str, Lease]:
    """Queue a request; its lease lands in `got[tag]` and its tag in `order` when granted."""
    got = {} if got is None else got

    def grant(lease: Lease) -> None:
        got[tag] = lease
        order.append(tag)

    client.request(names, occupy, on_grant=grant, on_error=lambda exc: order.append(f"{tag}: {exc}"))
    return got


def _wait_for(predicate: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# -- refusals and unlimited names ----------------------------------------------------------


def test_a_limit_of_zero_or_too_small_is_refused_at_once_with_the_fix(slots: SlotClient) -> None:
    slots.create_limit("frozen", 0)
    slots.create_limit("small", 2)
    started = time.monotonic()
    with pytest.raises(SlotUnavailable, match=r"'frozen' is 0.*concurrency-limit create frozen N` with N >= 1"):
        slots.acquire(["frozen"], timeout=5)
    with pytest.raises(SlotUnavailable, match=r"3 slots asked of concurrency limit 'small'.*N >= 3"):
        slots.acquire(["small"], 3, timeout=5)
    assert time.monotonic() - started < 1.0
    assert slots.read_limit("small").waiting == 0


def test_an_unknown_name_is_unlimited_unless_strict(slots: SlotClient) -> None:
    lease = slots.acquire(["nobody-limits-this"])
    assert lease.lease_id is None and lease.names == ("nobody-limits-this",)
    lease.release()
    with pytest.raises(SlotUnavailable, match="no concurrency limit named ghost; create it with"):
        slots.acquire(["ghost"], strict=True)
    with pytest.raises(LimitNotFound, match="ghost"):
        slots.read_limit("ghost")
    with pytest.raises(LimitNotFound):
        slots.delete_limit("ghost")


def test_limit_names_are_pushed_so_limited_needs_no_call(slots: SlotClient, server: StateServer) -> None:
    assert slots.limited(["a", "b"]) == ()
    with SlotClient(server.url, token=TOKEN) as admin:
        admin.create_limit("b", 1)
        _wait_for(lambda: slots.limited(["a", "b"]) == ("b",))
        admin.delete_limit("b")
        _wait_for(lambda: slots.limited(["a", "b"]) == ())


# -- fairness ------------------------------------------------------------------------------


def test_waiters_are_granted_in_arrival_order(slots: SlotClient) -> None:
    slots.create_limit("db", 1)
    first = slots.acquire(["db"])
    order: list[str] = []
    got: dict[str, Lease] = {}
    for tag in "abcde":
        _queue(slots, ["db"], 1, order, tag, got)
    _wait_for(lambda: slots.read_limit("db").waiting == 5)
    first.release()
    for i, tag in enumerate("abcde"):
        _wait_for(lambda: len(order) == i + 1)
        assert order == list("abcde"[: i + 1])
        got[tag].release()
    assert slots.read_limit("db").active == 0


def test_a_big_request_is_not_starved_by_small_ones_behind_it(slots: SlotClient) -> None:
    slots.create_limit("api", 3)
    held = [slots.acquire(["api"]) for _ in range(2)]
    order: list[str] = []
    got = _queue(slots, ["api"], 3, order, "big")
    _wait_for(lambda: slots.read_limit("api").waiting == 1)
    small = [_queue(slots, ["api"], 1, order, f"small{i}") for i in range(3)]
    # One slot is free all along, but the small requests queue behind the big one.
    time.sleep(0.1)
    assert order == [] and slots.read_limit("api").active == 2
    for lease in held:
        lease.release()
    _wait_for(lambda: order == ["big"])
    got["big"].release()
    _wait_for(lambda: len(order) == 4)
    assert order == ["big", "small0", "small1", "small2"]
    for g in small:
        next(iter(g.values())).release()


# -- every way a slot comes back -----------------------------------------------------------


def test_release_is_idempotent_and_frees_the_slot(slots: SlotClient) -> None:
    slots.create_limit("r", 1)
    lease = slots.acquire(["r"], holder=Holder("task run load-3", task_run_id=uuid.uuid4()))
    info = slots.read_limit("r")
    assert info.active == 1 and info.holders[0].label == "task run load-3"
    assert info.holders[0].lease_id == lease.lease_id
    lease.release()
    lease.release()
    assert slots.read_limit("r").active == 0 and lease.released


def test_an_expired_lease_frees_its_slot_on_time_and_its_late_release_is_rejected(slots: SlotClient) -> None:
    slots.create_limit("e", 1)
    ghost = _raw_acquire(slots, ["e"], lease_seconds=0.4)
    assert ghost is not None
    started = time.monotonic()
    lease = slots.acquire(["e"], timeout=5)
    waited = time.monotonic() - started
    assert 0.25 < waited < 0.6, waited  # the timer wakes at the expiry itself
    assert slots.release_leases([ghost]) == [ghost]
    assert slots.renew_leases([ghost]) == [ghost]
    assert slots.read_limit("e").active == 1
    lease.release()


def test_reset_frees_every_slot_and_the_holders_learn_they_lost_them(server: StateServer) -> None:
    with SlotClient(server.url, token=TOKEN, lease_seconds=0.6) as holder, SlotClient(server.url, token=TOKEN) as admin:
        admin.create_limit("reset-me", 2)
        leases = [holder.acquire(["reset-me"]) for _ in range(2)]
        admin.reset_limit("reset-me")
        assert admin.read_limit("reset-me").active == 0
        _wait_for(lambda: all(lease.lost for lease in leases))
        fresh = admin.acquire(["reset-me"], timeout=2)
        leases[0].release()  # rejected, logged, changes nothing
        assert admin.read_limit("reset-me").active == 1
        fresh.release()


def test_cancel_after_grant_releases_and_cancel_while_queued_withdraws(slots: SlotClient) -> None:
    slots.create_limit("c", 1)
    granted: list[Lease] = []
    ticket = slots.request(["c"], on_grant=granted.append, on_error=print)
    assert ticket.done() and granted and slots.read_limit("c").active == 1
    queued = slots.request(["c"], on_grant=granted.append, on_error=print)
    assert not queued.done() and slots.read_limit("c").waiting == 1
    queued.cancel()
    assert slots.read_limit("c").waiting == 0
    ticket.cancel()  # granted meanwhile: the grant goes back
    assert slots.read_limit("c").active == 0 and len(granted) == 1


def test_closing_a_client_releases_what_it_holds_and_withdraws_what_it_waits_for(server: StateServer) -> None:
    with SlotClient(server.url, token=TOKEN) as admin:
        admin.create_limit("k", 1)
        other = SlotClient(server.url, token=TOKEN)
        mine = other.acquire(["k"])
        other.request(["k"], on_grant=lambda lease: None, on_error=print)
        _wait_for(lambda: admin.read_limit("k").waiting == 1)
        kept = admin.acquire(["unlimited-name"])
        other.close()
        info = admin.read_limit("k")
        assert (info.active, info.waiting) == (0, 0) and mine.released
        assert kept.lease_id is None


def test_a_timeout_withdraws_the_request_and_names_the_limit(slots: SlotClient) -> None:
    slots.create_limit("t", 1)
    held = slots.acquire(["t"])
    with pytest.raises(SlotTimeout, match=r"waited 0\.[23] s for 1 slot\(s\) of concurrency limit\(s\) 't'"):
        slots.acquire(["t"], timeout=0.25)
    assert slots.read_limit("t").waiting == 0
    held.release()


def test_acquire_async_waits_without_blocking_the_loop(slots: SlotClient) -> None:
    slots.create_limit("aio", 1)
    held = slots.acquire(["aio"])

    async def main() -> tuple[Lease, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        threading.Timer(0.2, held.release).start()
        lease = await slots.acquire_async(["aio"], timeout=5)
        ticker.cancel()
        with pytest.raises(SlotTimeout):
            await slots.acquire_async(["aio"], timeout=0.1)
        return lease, ticks

    lease, ticks = asyncio.run(main())
    assert lease.lease_id is not None and ticks >= 10
    lease.release()
    assert slots.read_limit("aio").waiting == 0


def test_deleting_a_limit_grants_its_waiters_unlimited(slots: SlotClient) -> None:
    slots.create_limit("gone", 1)
    held = slots.acquire(["gone"])
    order: list[str] = []
    got = _queue(slots, ["gone"], 1, order, "w")
    _wait_for(lambda: slots.read_limit("gone").waiting == 1)
    slots.delete_limit("gone")
    _wait_for(lambda: order == ["w"])
    assert got["w"].lease_id is None
    held.release()


def test_a_request_sent_again_gets_the_same_grant(slots: SlotClient) -> None:
    slots.create_limit("again", 1)
    request_id = uuid.uuid4().hex
    first = _raw_acquire(slots, ["again"], 5.0, request_id)
    assert _raw_acquire(slots, ["again"], 5.0, request_id) == first
    assert slots.read_limit("again").active == 1


# -- rate limits ---------------------------------------------------------------------------


def test_a_rate_limit_admits_a_burst_then_its_decay_rate(slots: SlotClient) -> None:
    slots.create_limit("rate", 2, slot_decay_per_second=10.0)
    started = time.monotonic()
    times = []
    for _ in range(8):
        slots.rate_limit(["rate"], timeout=5)
        times.append(time.monotonic() - started)
    assert times[1] < 0.05, times  # the burst
    gaps = [b - a for a, b in zip(times[1:], times[2:])]
    assert 0.08 < statistics.mean(gaps) < 0.13, gaps  # then ~10 per second
    assert slots.read_limit("rate").holders == []


# -- push latency --------------------------------------------------------------------------


def test_a_waiter_hears_of_its_grant_within_milliseconds_of_a_release(slots: SlotClient, server: StateServer) -> None:
    slots.create_limit("fast", 1)
    with SlotClient(server.url, token=TOKEN) as waiter_client:
        latencies = []
        for _ in range(40):
            held = slots.acquire(["fast"])
            granted = threading.Event()
            got: list[Lease] = []
            waiter_client.request(["fast"], on_grant=lambda lease: (got.append(lease), granted.set()), on_error=print)
            _wait_for(lambda: slots.read_limit("fast").waiting == 1)
            started = time.perf_counter()
            held.release()
            assert granted.wait(2)
            latencies.append(time.perf_counter() - started)
            got[0].release()
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[-1]
    print(f"grant latency after release: p50 {p50 * 1000:.2f} ms, max {p99 * 1000:.2f} ms")
    assert p50 < 0.02 and p99 < 0.05, latencies
