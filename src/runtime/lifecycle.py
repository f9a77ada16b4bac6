"""The lifecycle of one flow run's task runs, as a pure state machine: events in, instructions
out. No threads, no I/O, no clocks; `scheduler.py` is the thin driver that feeds it events and
carries out its instructions (the split distributed's worker state machine makes).

A run is held here from submission until it is finished, in one phase:

    WAITING      submitted; some upstream runs are unfinished
    DISPATCHED   handed to the runner (queued there or running)
    RETRY_WAIT   an attempt ended AwaitingRetry, or was lost with a retry left; the retry
                 delay is running out

    event                                  phase before   -> phase after, instructions
    Submitted(run, waiting_on=())          (new)          -> DISPATCHED, Dispatch
    Submitted(run, waiting_on=(u, ...))    (new)          -> WAITING, Watch(u) for each upstream
                                                             not watched yet
    UpstreamFinished(u)                    WAITING        -> DISPATCHED, Dispatch, for each run
                                                             whose last unfinished upstream was u
    AttemptEnded(run, retry_delay=None)    DISPATCHED     -> (gone), Resolve
    AttemptEnded(run, retry_delay=d)       DISPATCHED     -> RETRY_WAIT, StartTimer(run, d)
    RetryDue(run)                          RETRY_WAIT     -> DISPATCHED, Dispatch
    AttemptLost(run, type, reason)         DISPATCHED     -> (gone), End(run, type, reason)
    AttemptLost(run, CRASHED, reason, d)   DISPATCHED     -> RETRY_WAIT, Requeue(run, reason),
                                                             StartTimer(run, d)
    Premature(run, waiting_on=(u, ...))    DISPATCHED     -> WAITING, Watch(u) for each upstream
                                                             not watched yet; or DISPATCHED,
                                                             Dispatch, when it waits on none
    CancelRequested(reason, crash_running) WAITING        -> (gone), End(run, CANCELLED, reason)
                                           RETRY_WAIT     -> (gone), End(run, CANCELLED, reason)
                                           DISPATCHED     -> DISPATCHED, Revoke(run)
    Revoked(run, running=True)             DISPATCHED     -> DISPATCHED, Mark(run, reason) if the
                                                             request said crash_running

`AttemptEnded` means the runner returned the engine's outcome; `AttemptLost` that it could not
(the call was cancelled while queued, could not be sent, or its worker died). Whether a lost
attempt is tried again is decided by the driver from the task's budget (`losses.py`), as the
engine decides for the task's own failures: the event carries the retry delay if it is, and
the machine moves the run to RETRY_WAIT like an `AttemptEnded` with a delay, first asking the
driver to record the AwaitingRetry the engine never got to set (`Requeue`). A run being
cancelled does not retry: its next `AttemptEnded` or `AttemptLost` with a delay ends it
CANCELLED instead (a lost attempt without one ends as the event says). Events about a run
that is no longer held (a timer firing after a cancel, say) change nothing.

`Premature` is for a run the driver handed over before its upstreams finished (a runner that
starts a call once its upstream calls finish, on the workers: Dask, Ray) and that could not
run because one of them did not complete (its worker died): the hand-over is void, not an
attempt, and the run waits for its upstreams like any other before it is dispatched again.

Deciding what a failed upstream means for its dependents is the task engine's job, not this
machine's: an upstream that finished in any state releases its dependents.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .states import StateType


#: A run as the driver names it: any hashable key. The driver uses its futures (hashed by
#: identity, cheaper than a UUID's Python-level hash); the tests use plain ids.
RunKey = Hashable


# Events and instructions are slotted dataclasses, treated as immutable but not `frozen=True`:
# four are made per task run on the hot path, and a frozen one costs twice as much to build.


class Phase(enum.Enum):
    WAITING = "WAITING"
    DISPATCHED = "DISPATCHED"
    RETRY_WAIT = "RETRY_WAIT"


_DISPATCHED = Phase.DISPATCHED

# -- events -------------------------------------------------------------------------------


@dataclass(slots=True)
class Submitted:
    run_id: RunKey
    waiting_on: tuple[RunKey, ...] = ()


@dataclass(slots=True)
class UpstreamFinished:
    run_id: RunKey


@dataclass(slots=True)
class AttemptEnded:
    run_id: RunKey
    retry_delay: float | None = None


@dataclass(slots=True)
class AttemptLost:
    """The runner could not return the attempt's outcome. `type` is the state the run ends in
    if it is not tried again (CANCELLED, CRASHED or FAILED); `retry_delay`, set only with
    CRASHED, says it is tried again after that many seconds."""

    run_id: RunKey
    type: StateType
    reason: str
    retry_delay: float | None = None


@dataclass(slots=True)
class Premature:
    run_id: RunKey
    waiting_on: tuple[RunKey, ...] = ()


@dataclass(slots=True)
class RetryDue:
    run_id: RunKey


@dataclass(slots=True)
class CancelRequested:
    reason: str
    crash_running: bool = False


@dataclass(slots=True)
class Revoked:
    run_id: RunKey
    running: bool


Event = (
    Submitted | UpstreamFinished | AttemptEnded | AttemptLost | Premature | RetryDue | CancelRequested
    | Revoked
)

# -- instructions -------------------------------------------------------------------------


@dataclass(slots=True)
class Watch:
    """Subscribe to the completion of upstream `run_id`; feed back `UpstreamFinished`."""

    run_id: RunKey


@dataclass(slots=True)
class Dispatch:
    """Hand the run to the runner; feed back `AttemptEnded` or `AttemptLost`."""

    run_id: RunKey


@dataclass(slots=True)
class Resolve:
    """The last attempt's outcome is final: complete the run's future with it."""

    run_id: RunKey


@dataclass(slots=True)
class StartTimer:
    """Feed back `RetryDue(run_id)` after `delay` seconds."""

    run_id: RunKey
    delay: float


@dataclass(slots=True)
class Revoke:
    """Ask the runner to cancel the queued call; if it is already running, feed back
    `Revoked(run_id, running=True)`."""

    run_id: RunKey


@dataclass(slots=True)
class Requeue:
    """Record AwaitingRetry with `reason` on a run whose attempt was lost (its engine never got
    to); a `StartTimer` for the retry follows."""

    run_id: RunKey
    reason: str


@dataclass(slots=True)
class End:
    """Record `type` (CANCELLED, CRASHED or FAILED) with `reason` on a run its engine did not
    finish, and complete its future with that state."""

    run_id: RunKey
    type: StateType
    reason: str


@dataclass(slots=True)
class Mark:
    """Record CRASHED on a run still running elsewhere; its future completes when the
    attempt returns (the engine's own final state is then refused)."""

    run_id: RunKey
    reason: str


Instruction = Watch | Dispatch | Resolve | StartTimer | Requeue | Revoke | End | Mark


@dataclass(frozen=True, slots=True)
class LifecycleStatistics:
    waiting: int
    dispatched: int
    retry_wait: int
    watched_upstreams: int


class RunLifecycle:
    """The phases of a flow run's task runs. See the module docstring for the table."""

    __slots__ = ("_phase", "_remaining", "_dependents", "_cancelling", "_handlers")

    def __init__(self) -> None:
        self._phase: dict[RunKey, Phase] = {}
        self._remaining: dict[RunKey, int] = {}  # WAITING run -> upstreams it still waits for
        self._dependents: dict[RunKey, list[RunKey]] = {}  # watched upstream -> runs waiting on it
        self._cancelling: dict[RunKey, CancelRequested] = {}
        self._handlers: dict[type, Callable[[Any], list[Instruction]]] = {
            Submitted: self.submitted,
            AttemptEnded: self.attempt_ended,
            UpstreamFinished: self._upstream_finished,
            AttemptLost: self._attempt_lost,
            Premature: self._premature,
            RetryDue: self._retry_due,
            CancelRequested: self._cancel_requested,
            Revoked: self._revoked,
        }

    def handle(self, event: Event) -> list[Instruction]:
        """Apply any event; `submitted` and `attempt_ended`, the two every task run meets, may
        also be called directly (the driver does, to skip this lookup on its hot path)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"not a lifecycle event: {event!r}")
        return handler(event)

    def phase(self, run_id: RunKey) -> Phase | None:
        """The run's phase, or None if it is not held (never submitted, or finished)."""
        return self._phase.get(run_id)

    def submitted(self, event: Submitted) -> list[Instruction]:
        run_id = event.run_id
        if run_id in self._phase:
            raise ValueError(f"run {run_id} was submitted twice")
        if not event.waiting_on:
            self._phase[run_id] = _DISPATCHED  # a global: `Phase.X` is a descriptor call on 3.11
            return [Dispatch(run_id)]
        return self._wait(run_id, event.waiting_on)

    def submitted_ready(self, run_id: RunKey) -> None:
        """`submitted(Submitted(run_id))` for a run that waits on nothing, whose one
        instruction is always `Dispatch(run_id)`: the driver's hot path, without making the
        event and instruction objects (a fifth of a µs each, twice a task run)."""
        if run_id in self._phase:
            raise ValueError(f"run {run_id} was submitted twice")
        self._phase[run_id] = _DISPATCHED

    def attempt_resolved(self, run_id: RunKey) -> bool:
        """`attempt_ended(AttemptEnded(run_id))` without a retry delay, likewise: True when
        its instruction is `Resolve(run_id)`, False when there is none."""
        if self._phase.get(run_id) is not _DISPATCHED:
            return False
        del self._phase[run_id]
        if self._cancelling:
            self._cancelling.pop(run_id, None)
        return True

    def _premature(self, event: Premature) -> list[Instruction]:
        run_id = event.run_id
        if self._phase.get(run_id) is not Phase.DISPATCHED:
            return []
        request = self._cancelling.pop(run_id, None)
        if request is not None:
            del self._phase[run_id]
            return [End(run_id, StateType.CANCELLED, request.reason)]
        if not event.waiting_on:
            return [Dispatch(run_id)]
        return self._wait(run_id, event.waiting_on)

    def _wait(self, run_id: RunKey, waiting_on: tuple[RunKey, ...]) -> list[Instruction]:
        upstreams = dict.fromkeys(waiting_on)  # distinct, in order
        self._phase[run_id] = Phase.WAITING
        self._remaining[run_id] = len(upstreams)
        instructions: list[Instruction] = []
        for upstream in upstreams:
            waiting = self._dependents.get(upstream)
            if waiting is None:
                self._dependents[upstream] = [run_id]
                instructions.append(Watch(upstream))
            else:
                waiting.append(run_id)
        return instructions

    def _upstream_finished(self, event: UpstreamFinished) -> list[Instruction]:
        instructions: list[Instruction] = []
        for run_id in self._dependents.pop(event.run_id, ()):
            if self._phase.get(run_id) is not Phase.WAITING:
                continue  # cancelled meanwhile
            left = self._remaining[run_id] - 1
            if left:
                self._remaining[run_id] = left
            else:
                del self._remaining[run_id]
                self._phase[run_id] = Phase.DISPATCHED
                instructions.append(Dispatch(run_id))
        return instructions

    def attempt_ended(self, event: AttemptEnded) -> list[Instruction]:
        run_id = event.run_id
        if self._phase.get(run_id) is not Phase.DISPATCHED:
            return []
        if event.retry_delay is None:
            del self._phase[run_id]
            if self._cancelling:
                self._cancelling.pop(run_id, None)
            return [Resolve(run_id)]
        request = self._cancelling.pop(run_id, None)
        if request is not None:
            del self._phase[run_id]
            return [End(run_id, StateType.CANCELLED, request.reason)]
        self._phase[run_id] = Phase.RETRY_WAIT
        return [StartTimer(run_id, event.retry_delay)]

    def _attempt_lost(self, event: AttemptLost) -> list[Instruction]:
        run_id = event.run_id
        if self._phase.get(run_id) is not Phase.DISPATCHED:
            return []
        request = self._cancelling.pop(run_id, None)
        if event.retry_delay is None or event.type is not StateType.CRASHED:
            del self._phase[run_id]
            return [End(run_id, event.type, event.reason)]
        if request is not None:  # it would be retried, but the flow is cancelling it
            del self._phase[run_id]
            return [End(run_id, StateType.CANCELLED, request.reason)]
        self._phase[run_id] = Phase.RETRY_WAIT
        return [Requeue(run_id, event.reason), StartTimer(run_id, event.retry_delay)]

    def _retry_due(self, event: RetryDue) -> list[Instruction]:
        if self._phase.get(event.run_id) is not Phase.RETRY_WAIT:
            return []
        self._phase[event.run_id] = Phase.DISPATCHED
        return [Dispatch(event.run_id)]

    def _cancel_requested(self, event: CancelRequested) -> list[Instruction]:
        instructions: list[Instruction] = []
        for run_id, phase in list(self._phase.items()):
            if phase is Phase.DISPATCHED:
                self._cancelling[run_id] = event
                instructions.append(Revoke(run_id))
            else:
                del self._phase[run_id]
                self._remaining.pop(run_id, None)
                instructions.append(End(run_id, StateType.CANCELLED, event.reason))
        return instructions

    def _revoked(self, event: Revoked) -> list[Instruction]:
        request = self._cancelling.get(event.run_id)
        if request is None or not event.running or not request.crash_running:
            return []
        if self._phase.get(event.run_id) is not Phase.DISPATCHED:
            return []
        return [Mark(event.run_id, request.reason)]

    def held(self) -> int:
        """How many runs are not finished yet."""
        return len(self._phase)

    def statistics(self) -> LifecycleStatistics:
        phases = list(self._phase.values())
        return LifecycleStatistics(
            waiting=phases.count(Phase.WAITING),
            dispatched=phases.count(Phase.DISPATCHED),
            retry_wait=phases.count(Phase.RETRY_WAIT),
            watched_upstreams=len(self._dependents),
        )
