"""Concurrency slots for task runs: which tags are limited, and waiting for a slot.

The state service holds the limits and hands out slots as leases (`api.SlotClient`: one
stream per process pushes grants and the set of limit names, one thread renews what this
process holds). A task run tagged with a limit's name takes a slot per limited tag after its
inputs are ready and before it runs, and gives it back when its attempt ends, whatever the
outcome:

- submitted runs (`scheduler.py`): the flow's scheduler asks for the slot when the lifecycle
  dispatches the run (its upstreams are done by then: a limited run is never handed to a
  runner early), without blocking a thread, and hands the run to its runner only when the
  grant arrives; the flow's process holds and renews the lease while a worker runs it, and
  releases it when the attempt's outcome (or its loss) comes back. A dead flow process stops
  renewing, so its slots free within the lease time.
- a direct call (`task(x)`) waits in the calling thread (`holding_slots`).

While it waits, the run's state is PENDING("AwaitingConcurrencySlot") naming the limits, so
`headwater runs show` says why it is not running. Tags without a limit cost nothing: the
client knows the limit names from the service's pushes, without a call per run. With
recording off there is no service, and no tag is limited.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import SlotUnavailable
from .recording import RunServices
from .runs import TaskRun, set_state
from .states import AwaitingConcurrencySlot, Failed, State

_clients: dict[tuple[Any, int], Any] = {}
_lock = threading.Lock()


def slot_client(target: Any) -> Any:
    """This process's `SlotClient` for the state service at `target` (made once)."""
    memo = (target, os.getpid())
    client = _clients.get(memo)
    if client is None:
        with _lock:
            client = _clients.get(memo)
            if client is None:
                from pathlib import Path

                from ..api import SlotClient, get_settings

                url, token, tls_ca = target
                client = _clients[memo] = SlotClient(
                    url, token=token, tls_ca=Path(tls_ca) if tls_ca else None,
                    lease_seconds=get_settings().slot_lease_seconds,
                )  # fmt: skip
                if len(_clients) == 1:
                    # Before the interpreter joins executor threads at exit: a server in this
                    # process serves our grant stream on one of them, until we close it.
                    threading._register_atexit(close_slot_clients)  # type: ignore[attr-defined]
    return client


def close_slot_clients() -> None:
    """Close this process's slot clients: their streams end, and what they hold is released."""
    with _lock:
        mine = [c for (_, pid), c in _clients.items() if pid == os.getpid()]
        _clients.clear()
    for client in mine:
        try:
            client.close()
        except Exception:  # exiting: a client that cannot close leaves its leases to expire
            pass


def limited_tags(services: RunServices, tags: tuple[str, ...]) -> tuple[str, ...]:
    """Which of a run's tags name a concurrency limit (none with recording off)."""
    if not tags or services.target is None:
        return ()
    return tuple(slot_client(services.target).limited(tags))


_executors: dict[str, tuple[int, Any]] = {}

#: what a run's `slot` is once the flow withdrew it (cancelled): a late grant must not start it
WITHDRAWN = object()


def _executor(role: str) -> Any:
    """One thread of ours per role in this process (made again after a fork)."""
    pid = os.getpid()
    found = _executors.get(role)
    if found is None or found[0] != pid:
        with _lock:
            found = _executors.get(role)
            if found is None or found[0] != pid:
                from concurrent.futures import ThreadPoolExecutor

                found = _executors[role] = (pid, ThreadPoolExecutor(1, thread_name_prefix=f"headwater-slot-{role}"))
    return found[1]


def hand_over(dispatch: Callable[[Any], None], future: Any) -> None:
    """Dispatch a run whose slots were just granted, on a thread of ours: the grant arrives
    on the slot client's stream thread, which must stay free for the next grants (an inline
    runner would run the task right there)."""
    _executor("grants").submit(dispatch, future)


def in_background(fn: Callable[..., Any], *args: Any, role: str = "requests") -> None:
    """Send a request (or, with role="releases", a release) off the caller's thread: a
    `.submit` or a worker thread does not wait for the service's round trip and commit.
    Releases have a thread of their own, so they never queue behind a burst of requests."""
    _executor(role).submit(fn, *args)


def settle(timeout: float = 30.0) -> None:
    """Wait until the requests and releases sent so far have been made (a flow's end: its
    slots are back before it returns)."""
    for role in ("requests", "releases"):
        found = _executors.get(role)
        if found is not None and found[0] == os.getpid():
            try:
                found[1].submit(lambda: None).result(timeout)
            except Exception:  # a release that could not be made: its lease expires by itself
                pass


class SlotRequest:
    """A run's request for slots, sent in the background; withdrawn by `cancel`, before or
    after it reached the service."""

    __slots__ = ("ticket", "cancelled", "_lock")

    def __init__(self) -> None:
        self.ticket: Any = None
        self.cancelled = False
        self._lock = threading.Lock()

    def send(self, client: Any, limits: tuple[str, ...], holder: Any, on_grant: Any, on_error: Any) -> None:
        with self._lock:
            if self.cancelled:
                return
        try:
            ticket = client.request(limits, on_grant=on_grant, on_error=on_error, holder=holder)
        except BaseException as exc:  # the service refused the call itself
            on_error(exc)
            return
        with self._lock:
            self.ticket, cancelled = ticket, self.cancelled
        if cancelled:
            ticket.cancel()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled, ticket = True, self.ticket
        if ticket is not None:
            ticket.cancel()


def holder_for(run: TaskRun) -> Any:
    from ..api import Holder

    return Holder(label=f"task run {run.name}", task_run_id=run.id, flow_run_id=run.flow_run_id)


def awaiting(limits: tuple[str, ...]) -> State:
    return AwaitingConcurrencySlot(f"waiting for a slot of {', '.join(repr(n) for n in limits)}")


def inputs_ready(payload: Any, upstream: Any) -> bool:
    """Whether the upstreams the run needs completed: a run that will end NotReady takes no
    slot."""
    return all(upstream[i].state.is_completed() for i in payload.required)


def _limits_to_wait_for(payload: Any, upstream: Any) -> tuple[str, ...]:
    """The limits a direct call's run takes slots of now: none unless its inputs are ready."""
    return limited_tags(payload.services, payload.task_run.tags) if inputs_ready(payload, upstream) else ()


def attempt_with_slots(payload: Any, upstream: Any, attempt: Callable[[Any, Any], Any]) -> Any:
    """For a direct call: wait in this thread for a slot of each limited tag of the run (its
    state says so meanwhile), run `attempt`, and give the slots back however it ends. A limit
    that can never admit the run (0) ends it FAILED with the service's reason."""
    limits = _limits_to_wait_for(payload, upstream)
    if not limits:
        return attempt(payload, upstream)
    run, reporter = payload.task_run, payload.services.reporter()
    set_state(run, awaiting(limits), reporter)
    try:
        lease = slot_client(payload.services.target).acquire(limits, holder=holder_for(run))
    except SlotUnavailable as exc:
        return refused(run, exc, reporter)
    try:
        return attempt(payload, upstream)
    finally:
        lease.release()


async def attempt_with_slots_async(payload: Any, upstream: Any, attempt: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """`attempt_with_slots` for async tasks: the wait does not block the event loop."""
    limits = _limits_to_wait_for(payload, upstream)
    if not limits:
        return await attempt(payload, upstream)
    run, reporter = payload.task_run, payload.services.reporter()
    set_state(run, awaiting(limits), reporter)
    try:
        lease = await slot_client(payload.services.target).acquire_async(limits, holder=holder_for(run))
    except SlotUnavailable as exc:
        return refused(run, exc, reporter)
    try:
        return await attempt(payload, upstream)
    finally:
        lease.release()


def refused(run: TaskRun, exc: BaseException, reporter: Any) -> Any:
    """The outcome of a run no slot can ever be found for: FAILED, saying why."""
    from .engine import outcome_of

    run.end_time = time.time()
    return outcome_of(set_state(run, Failed(exc), reporter))
