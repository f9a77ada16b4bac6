"""Run states as an explicit machine: the types, the legal moves, and the `State` value.

A run's life is a walk through this table (sub-state names in brackets)::

    (new) ──> PENDING ──────────────> RUNNING ──────────> COMPLETED [Completed, Cached]
                │  [NotReady: an upstream failed;         ├────────> FAILED [Failed, TimedOut]
                │   a final state for that run]           ├────────> CRASHED / CANCELLED
                │                                         └─> SCHEDULED [AwaitingRetry]
                │                                                └─> RUNNING [Retrying] ...
                └─> SCHEDULED / PAUSED / CANCELLED / CRASHED

    RUNNING ──> PAUSED (`pause_flow_run`) ──> RUNNING (resumed) | FAILED (the pause timed out, or was rejected)

    any live state ──> CANCELLING (the service, on `cancel_flow_run`) ──> CANCELLED
                                   (or COMPLETED / FAILED / CRASHED: it ended first)

COMPLETED, FAILED, CRASHED and CANCELLED are terminal: nothing leaves them. A run that will be
retried never enters FAILED; it goes RUNNING -> SCHEDULED("AwaitingRetry") -> RUNNING("Retrying").

This module is pure: no I/O, no clocks beyond stamping a new state, no threads.

The state service checks the same table, restated in strings in `api/rules.py` (the runtime
imports the api only lazily, for grpc's sake, and the api may not import the runtime).
`tests/api/test_rules.py` ties the two: `StateType`, `TERMINAL`, `ALLOWED` and the sub-state
name of every constructor below must match `rules`, so change both together.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple
from uuid import UUID

from ..errors import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    InvalidTransition,
    UnfinishedRun,
    UpstreamFailed,
)


class StateType(enum.Enum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"
    #: Asked to cancel, not yet stopped: set by the state service only (`cancel_flow_run`),
    #: never by a run's own engine; the run's process ends it CANCELLED (or it ends on its own).
    CANCELLING = "CANCELLING"

    # Members are singletons, so identity hashing is exact; Enum's own __hash__ is Python
    # code, and the transition table is consulted on every state change.
    __hash__ = object.__hash__


TERMINAL: frozenset[StateType] = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
)

_S = StateType
ALLOWED: Mapping[StateType | None, frozenset[StateType]] = {
    None: frozenset({_S.PENDING, _S.SCHEDULED, _S.RUNNING}),
    _S.SCHEDULED: frozenset({_S.PENDING, _S.RUNNING, _S.CANCELLED, _S.CRASHED, _S.PAUSED, _S.CANCELLING}),
    # PENDING -> PENDING is the move to "NotReady"; PENDING -> FAILED covers a run that fails
    # before it starts (its inputs could not be resolved).
    _S.PENDING: frozenset(
        {_S.PENDING, _S.RUNNING, _S.SCHEDULED, _S.CANCELLED, _S.CRASHED, _S.PAUSED, _S.FAILED,
         _S.CANCELLING}
    ),
    _S.RUNNING: frozenset(
        {_S.COMPLETED, _S.FAILED, _S.CRASHED, _S.CANCELLED, _S.PAUSED, _S.SCHEDULED, _S.CANCELLING}
    ),
    # PAUSED -> FAILED: nobody resumed the run before its pause's deadline (the service's timer),
    # or someone rejected the pause (`reject_flow_run`).
    _S.PAUSED: frozenset({_S.RUNNING, _S.PENDING, _S.FAILED, _S.CANCELLED, _S.CRASHED, _S.CANCELLING}),
    # A run that ended on its own before it heard of the cancel keeps the end it reached.
    _S.CANCELLING: frozenset({_S.CANCELLED, _S.CRASHED, _S.FAILED, _S.COMPLETED}),
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CRASHED: frozenset(),
    _S.CANCELLED: frozenset(),
}


def transition(current: State | None, proposed: State) -> State:
    """Return `proposed` if the machine allows moving to it from `current`, else raise."""
    current_type = None if current is None else current.type
    if proposed.type not in ALLOWED[current_type]:
        before = "a new run" if current is None else f"{current.type.value}({current.name})"
        raise InvalidTransition(
            f"cannot move from {before} to {proposed.type.value}({proposed.name}); "
            f"allowed: {sorted(t.value for t in ALLOWED[current_type]) or 'nothing (terminal)'}"
        )
    return proposed


_tuple_new = tuple.__new__
_now = time.time
# Members named once: on Python 3.11 each `StateType.X` is a descriptor call (75 ns against
# 6 ns for a global), and these constructors run three times a task run.
_MEMBER_COMPLETED = StateType.COMPLETED
_MEMBER_PENDING = StateType.PENDING
_MEMBER_RUNNING = StateType.RUNNING
_MEMBER_SCHEDULED = StateType.SCHEDULED


class _StateFields(NamedTuple):
    type: StateType
    name: str
    message: str | None = None
    data: Any = None
    ts: float = 0.0
    # Set for a NotReady state: which upstream run did not complete.
    upstream_run_id: UUID | None = None


class State(_StateFields):
    """One point in a run's life: what kind, its sub-state name, and the data it carries.

    `data` is the run's return value for COMPLETED states and the exception for FAILED,
    CRASHED and CANCELLED ones. `ts` is seconds since the epoch (now, unless given);
    `timestamp` is the same instant as an aware UTC datetime.

    Immutable. A NamedTuple underneath rather than a frozen dataclass: every task run makes
    three, and the constructors below build one with `tuple.__new__` in a quarter of the time.
    """

    __slots__ = ()

    def __new__(
        cls,
        type: StateType,  # noqa: A002 - the field is called `type`, as in Prefect
        name: str,
        message: str | None = None,
        data: Any = None,
        ts: float | None = None,
        upstream_run_id: UUID | None = None,
    ) -> State:
        return _tuple_new(cls, (type, name, message, data, _now() if ts is None else ts, upstream_run_id))

    def __repr__(self) -> str:
        return f"State(type={self.type!r}, name={self.name!r}, message={self.message!r})"

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.ts, tz=timezone.utc)

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_final(self) -> bool:
        """Terminal, or the NotReady pending state a run ends in when an upstream failed."""
        return self.type in TERMINAL or self.name == "NotReady"

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's value; for a failed run, raise its exception (or return it). A value
        that stayed where the run ran (`Detached`) is fetched from there now."""
        data = self.data
        if type(data) is Detached:
            data = data.fetch()
        if self.type is StateType.COMPLETED:
            return data
        exc = self._exception(data)
        if raise_on_failure:
            raise exc
        return exc

    def _exception(self, data: Any) -> BaseException:
        if isinstance(data, BaseException):
            return data
        if self.name == "NotReady":
            return UpstreamFailed(self.message or "an upstream run did not complete")
        if self.type is StateType.CANCELLED:
            return CancelledRun(self.message or "the run was cancelled")
        if self.type is StateType.CRASHED:
            return CrashedRun(self.message or "the run crashed")
        if self.type is StateType.FAILED:
            return FailedRun(self.message or "the run failed")
        return UnfinishedRun(
            f"the run is {self.type.value}({self.name}), not finished; wait for it first"
        )

    def with_data(self, data: Any) -> State:
        return self._replace(data=data)

    def __str__(self) -> str:
        return f"{self.name}({self.message!r})" if self.message else f"{self.name}()"


class Detached:
    """A state's data that stayed where the run ran (a Dask or Ray worker, say): `fetch()`
    brings it here through the runner's handle. `State.result()` fetches it transparently."""

    __slots__ = ("handle",)

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def fetch(self, timeout: float | None = None) -> Any:
        return self.handle.fetch(timeout)

    def __repr__(self) -> str:
        return f"Detached({self.handle!r})"


def fetch_detached(states: Iterable[State | None], timeout: float | None = None) -> dict[int, Any]:
    """The values of completed `states` whose data stayed where they ran, fetched in one
    request per kind of handle that can fetch many at once (`fetch_many`: a Dask gather, one
    `ray.get`), keyed by `id(handle)`. Handles that cannot, and a batch that fails, are left
    out: fetching those one at a time names the value that fails."""
    groups: dict[type, list[Any]] = {}
    for state in states:
        if state is not None and type(state.data) is Detached and state.type is StateType.COMPLETED:
            handle = state.data.handle
            if hasattr(type(handle), "fetch_many"):
                groups.setdefault(type(handle), []).append(handle)
    fetched: dict[int, Any] = {}
    for kind, handles in groups.items():
        if len(handles) < 2:
            continue
        try:
            values = kind.fetch_many(handles, timeout)  # type: ignore[attr-defined]
        except Exception:
            continue
        fetched.update(zip(map(id, handles), values))
    return fetched


# Constructors, named as Prefect users know them. Each returns a fresh `State`.


def Scheduled(message: str | None = None, *, name: str = "Scheduled") -> State:
    return _tuple_new(State, (_MEMBER_SCHEDULED, name, message, None, _now(), None))


def AwaitingRetry(message: str | None = None) -> State:
    return _tuple_new(State, (_MEMBER_SCHEDULED, "AwaitingRetry", message, None, _now(), None))


def Pending(message: str | None = None, *, name: str = "Pending") -> State:
    return _tuple_new(State, (_MEMBER_PENDING, name, message, None, _now(), None))


def AwaitingConcurrencySlot(message: str | None = None) -> State:
    """A run waiting for a slot of a concurrency limit its tags name."""
    return _tuple_new(State, (_MEMBER_PENDING, "AwaitingConcurrencySlot", message, None, _now(), None))


def NotReady(message: str, upstream_run_id: UUID | None = None) -> State:
    return _tuple_new(State, (_MEMBER_PENDING, "NotReady", message, None, _now(), upstream_run_id))


def Running(message: str | None = None, *, name: str = "Running") -> State:
    return _tuple_new(State, (_MEMBER_RUNNING, name, message, None, _now(), None))


def Retrying(message: str | None = None) -> State:
    return _tuple_new(State, (_MEMBER_RUNNING, "Retrying", message, None, _now(), None))


def Completed(data: Any = None, message: str | None = None, *, name: str = "Completed") -> State:
    return _tuple_new(State, (_MEMBER_COMPLETED, name, message, data, _now(), None))


def Cached(data: Any = None, message: str | None = None) -> State:
    return _tuple_new(State, (_MEMBER_COMPLETED, "Cached", message, data, _now(), None))


def Failed(
    data: BaseException | None = None, message: str | None = None, *, name: str = "Failed"
) -> State:
    return State(StateType.FAILED, name, message or _describe(data), data)


def TimedOut(data: BaseException | None = None, message: str | None = None) -> State:
    return State(StateType.FAILED, "TimedOut", message or _describe(data), data)


def Crashed(data: BaseException | None = None, message: str | None = None) -> State:
    return State(StateType.CRASHED, "Crashed", message or _describe(data), data)


def Cancelled(data: BaseException | None = None, message: str | None = None) -> State:
    return State(StateType.CANCELLED, "Cancelled", message or _describe(data), data)


def Cancelling(message: str | None = None) -> State:
    """What the state service records on a cancel request; a run's engine never sets it."""
    return State(StateType.CANCELLING, "Cancelling", message)


def Paused(message: str | None = None) -> State:
    return State(StateType.PAUSED, "Paused", message)


def _describe(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
