"""The pure task-run lifecycle (`headwater.runtime.lifecycle`), as tables.

Each table row puts run R into a starting phase with `lifecycle_in` (by feeding the events
that lead there), hands the machine one event, and checks the instructions that come back
and R's phase afterwards. The tables cover every row of the module docstring's transition
table, lost attempts (retried through RETRY_WAIT after a Requeue when the event carries a
delay, ended as the event says otherwise), cancellation (Revoke for dispatched runs, Mark only
when crash_running was asked, no retry for a run being cancelled) and events about runs that are not held, which must change
nothing. The scenario tests below them check what the older ready-set graph checked (distinct
upstreams, one Watch per upstream, release on the last upstream in any order, submitting
twice) and that `statistics()` counts phases and watched upstreams and drops to zero once
every run has finished. No threads, no sleeps, no mocks: events in, instructions out.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from headwater.runtime.lifecycle import (
    AttemptEnded,
    AttemptLost,
    CancelRequested,
    Dispatch,
    End,
    Event,
    Instruction,
    LifecycleStatistics,
    Mark,
    Phase,
    Premature,
    Requeue,
    Resolve,
    RetryDue,
    Revoke,
    Revoked,
    RunLifecycle,
    StartTimer,
    Submitted,
    UpstreamFinished,
    Watch,
)
from headwater.runtime.states import StateType

R, U, V, W = (uuid.UUID(int=i) for i in range(1, 5))
STOP = "the flow was cancelled"
LOST = "cancelled before it started"
DIED = "the worker died"
CANCELLED, CRASHED, FAILED = StateType.CANCELLED, StateType.CRASHED, StateType.FAILED
POISON = "every attempt (3 of 3) lost its worker"
WAITING, DISPATCHED, RETRY_WAIT = Phase.WAITING, Phase.DISPATCHED, Phase.RETRY_WAIT
CRASH_REQUEST = CancelRequested(STOP, crash_running=True)
NOTHING_HELD = LifecycleStatistics(waiting=0, dispatched=0, retry_wait=0, watched_upstreams=0)

# The events that bring run R into each starting phase, fed in order.
SETUPS: dict[str, tuple[Event, ...]] = {
    "new": (),
    "waiting": (Submitted(R, (U,)),),
    "dispatched": (Submitted(R),),
    "retry_wait": (Submitted(R), AttemptEnded(R, 5.0)),
    "lost_wait": (Submitted(R), AttemptLost(R, CRASHED, DIED, 5.0)),
    "cancelling": (Submitted(R), CancelRequested(STOP)),
    "crashing": (Submitted(R), CRASH_REQUEST),
    "resolved": (Submitted(R), AttemptEnded(R)),
    "cancelled": (Submitted(R), AttemptEnded(R, 5.0), CancelRequested(STOP)),
}


def lifecycle_in(setup: str) -> RunLifecycle:
    """A fresh machine with run R in the starting phase named `setup` (see SETUPS)."""
    lifecycle = RunLifecycle()
    for event in SETUPS[setup]:
        lifecycle.handle(event)
    return lifecycle


def feed(lifecycle: RunLifecycle, *events: Event) -> list[Instruction]:
    """Every instruction the events produce, in order."""
    return [instruction for event in events for instruction in lifecycle.handle(event)]


@pytest.mark.parametrize(
    ("setup", "phase"),
    [
        ("new", None),
        ("waiting", WAITING),
        ("dispatched", DISPATCHED),
        ("retry_wait", RETRY_WAIT),
        ("lost_wait", RETRY_WAIT),
        ("cancelling", DISPATCHED),
        ("crashing", DISPATCHED),
        ("resolved", None),
        ("cancelled", None),
    ],
)
def test_each_setup_puts_the_run_in_its_phase(setup: str, phase: Phase | None) -> None:
    assert lifecycle_in(setup).phase(R) is phase


# (starting phase, event, instructions, phase after), by the docstring's table
TRANSITIONS: dict[str, tuple[str, Event, list[Instruction], Phase | None]] = {
    "submit-alone": ("new", Submitted(R), [Dispatch(R)], DISPATCHED),
    "submit-waiting": ("new", Submitted(R, (U, V)), [Watch(U), Watch(V)], WAITING),
    "upstream-done": ("waiting", UpstreamFinished(U), [Dispatch(R)], DISPATCHED),
    "ended-final": ("dispatched", AttemptEnded(R), [Resolve(R)], None),
    "ended-retry": ("dispatched", AttemptEnded(R, 2.5), [StartTimer(R, 2.5)], RETRY_WAIT),
    "ended-retry-now": ("dispatched", AttemptEnded(R, 0.0), [StartTimer(R, 0.0)], RETRY_WAIT),
    "retry-due": ("retry_wait", RetryDue(R), [Dispatch(R)], DISPATCHED),
    "lost-crashed": ("dispatched", AttemptLost(R, CRASHED, DIED), [End(R, CRASHED, DIED)], None),
    "lost-queued": ("dispatched", AttemptLost(R, CANCELLED, LOST), [End(R, CANCELLED, LOST)], None),
    # a lost attempt with a retry left waits like a failed one, once its AwaitingRetry is set
    "lost-retry": (
        "dispatched", AttemptLost(R, CRASHED, DIED, 1.5), [Requeue(R, DIED), StartTimer(R, 1.5)], RETRY_WAIT,
    ),
    "lost-retry-now": (
        "dispatched", AttemptLost(R, CRASHED, DIED, 0.0), [Requeue(R, DIED), StartTimer(R, 0.0)], RETRY_WAIT,
    ),
    "lost-retry-due": ("lost_wait", RetryDue(R), [Dispatch(R)], DISPATCHED),
    "lost-failed": ("dispatched", AttemptLost(R, FAILED, POISON), [End(R, FAILED, POISON)], None),
    # only a crash is retried: a delay on another type is not a retry
    "lost-failed-delay": ("dispatched", AttemptLost(R, FAILED, POISON, 1.0), [End(R, FAILED, POISON)], None),
    "lost-cancelled-delay": ("dispatched", AttemptLost(R, CANCELLED, LOST, 1.0), [End(R, CANCELLED, LOST)], None),
    "cancel-lost-wait": ("lost_wait", CancelRequested(STOP), [End(R, CANCELLED, STOP)], None),
    "cancel-waiting": ("waiting", CancelRequested(STOP), [End(R, CANCELLED, STOP)], None),
    "cancel-waiting-crash": ("waiting", CRASH_REQUEST, [End(R, CANCELLED, STOP)], None),
    "cancel-retry-wait": ("retry_wait", CancelRequested(STOP), [End(R, CANCELLED, STOP)], None),
    "cancel-dispatched": ("dispatched", CancelRequested(STOP), [Revoke(R)], DISPATCHED),
    "cancel-dispatched-crash": ("dispatched", CRASH_REQUEST, [Revoke(R)], DISPATCHED),
    # Mark only for a run still running, and only when the request said crash_running
    "revoked-running-crash": ("crashing", Revoked(R, running=True), [Mark(R, STOP)], DISPATCHED),
    "revoked-running": ("cancelling", Revoked(R, running=True), [], DISPATCHED),
    "revoked-queued-crash": ("crashing", Revoked(R, running=False), [], DISPATCHED),
    "revoked-queued": ("cancelling", Revoked(R, running=False), [], DISPATCHED),
    # a run being cancelled does not retry; a final outcome or a lost call still stands
    "cancelling-retry": ("cancelling", AttemptEnded(R, 1.0), [End(R, CANCELLED, STOP)], None),
    "crashing-retry": ("crashing", AttemptEnded(R, 1.0), [End(R, CANCELLED, STOP)], None),
    "cancelling-final": ("cancelling", AttemptEnded(R), [Resolve(R)], None),
    "crashing-final": ("crashing", AttemptEnded(R), [Resolve(R)], None),
    "cancelling-lost": ("cancelling", AttemptLost(R, CRASHED, DIED), [End(R, CRASHED, DIED)], None),
    "cancelling-lost-retry": ("cancelling", AttemptLost(R, CRASHED, DIED, 1.0), [End(R, CANCELLED, STOP)], None),
    "crashing-lost-retry": ("crashing", AttemptLost(R, CRASHED, DIED, 1.0), [End(R, CANCELLED, STOP)], None),
    # handed over early, and an upstream did not complete: not an attempt; it waits again
    "premature-waiting": ("dispatched", Premature(R, (U,)), [Watch(U)], WAITING),
    "premature-upstreams-done": ("dispatched", Premature(R), [Dispatch(R)], DISPATCHED),
    "premature-cancelling": ("cancelling", Premature(R, (U,)), [End(R, CANCELLED, STOP)], None),
}


@pytest.mark.parametrize(
    ("setup", "event", "instructions", "after"), list(TRANSITIONS.values()), ids=list(TRANSITIONS)
)
def test_transition(
    setup: str, event: Event, instructions: list[Instruction], after: Phase | None
) -> None:
    lifecycle = lifecycle_in(setup)
    assert lifecycle.handle(event) == instructions
    assert lifecycle.phase(R) is after


IGNORED = [
    # about a run that is not held: never submitted, resolved, or cancelled
    ("new", AttemptEnded(R)),
    ("new", AttemptEnded(R, 1.0)),
    ("new", AttemptLost(R, CRASHED, DIED)),
    ("new", AttemptLost(R, CRASHED, DIED, 1.0)),
    ("new", RetryDue(R)),
    ("new", Premature(R, (U,))),
    ("waiting", Premature(R, (U,))),
    ("retry_wait", Premature(R)),
    ("new", Revoked(R, running=True)),
    ("new", UpstreamFinished(U)),
    ("new", CancelRequested(STOP, crash_running=True)),
    ("resolved", AttemptEnded(R)),
    ("resolved", Revoked(R, running=True)),
    ("cancelled", RetryDue(R)),
    ("cancelled", AttemptEnded(R)),
    # about a held run, but not in the phase the event belongs to
    ("waiting", AttemptEnded(R)),
    ("waiting", AttemptLost(R, CRASHED, DIED)),
    ("waiting", RetryDue(R)),
    ("waiting", Revoked(R, running=True)),
    ("waiting", UpstreamFinished(V)),
    ("dispatched", RetryDue(R)),
    ("dispatched", Revoked(R, running=True)),
    ("dispatched", UpstreamFinished(U)),
    ("retry_wait", AttemptEnded(R)),
    ("retry_wait", AttemptLost(R, CANCELLED, LOST)),
    ("retry_wait", AttemptLost(R, CRASHED, DIED, 1.0)),
    ("lost_wait", AttemptLost(R, CRASHED, DIED, 1.0)),
    ("lost_wait", AttemptEnded(R)),
    ("retry_wait", Revoked(R, running=True)),
]


@pytest.mark.parametrize(
    ("setup", "event"), IGNORED, ids=[f"{s}-{type(e).__name__}" for s, e in IGNORED]
)
def test_an_event_out_of_place_changes_nothing(setup: str, event: Event) -> None:
    lifecycle = lifecycle_in(setup)
    phase, statistics = lifecycle.phase(R), lifecycle.statistics()
    assert lifecycle.handle(event) == []
    assert lifecycle.phase(R) is phase
    assert lifecycle.statistics() == statistics


@pytest.mark.parametrize(
    "obj",
    [None, "Submitted", R, Dispatch(R), Submitted],
    ids=["none", "str", "uuid", "instruction", "event-class"],
)
def test_handle_refuses_what_is_not_an_event(obj: Any) -> None:
    with pytest.raises(TypeError, match="not a lifecycle event"):
        RunLifecycle().handle(obj)


@pytest.mark.parametrize("setup", ["waiting", "dispatched", "retry_wait", "cancelling"])
@pytest.mark.parametrize("waiting_on", [(), (V,)], ids=["no-upstream", "upstream"])
def test_submitting_a_held_run_again_is_an_error(
    setup: str, waiting_on: tuple[uuid.UUID, ...]
) -> None:
    lifecycle = lifecycle_in(setup)
    phase, statistics = lifecycle.phase(R), lifecycle.statistics()
    with pytest.raises(ValueError, match="twice"):
        lifecycle.handle(Submitted(R, waiting_on))
    assert (lifecycle.phase(R), lifecycle.statistics()) == (phase, statistics)


# -- upstreams ----------------------------------------------------------------------------


def test_a_run_waiting_on_the_same_upstream_twice_waits_once() -> None:
    lifecycle = RunLifecycle()
    assert lifecycle.handle(Submitted(R, (U, V, U))) == [Watch(U), Watch(V)]
    assert lifecycle.statistics() == LifecycleStatistics(1, 0, 0, watched_upstreams=2)
    assert lifecycle.handle(UpstreamFinished(U)) == []
    assert lifecycle.phase(R) is WAITING
    assert lifecycle.handle(UpstreamFinished(V)) == [Dispatch(R)]


def test_an_upstream_is_watched_once_however_many_runs_wait_on_it() -> None:
    lifecycle = RunLifecycle()
    assert lifecycle.handle(Submitted(V, (U,))) == [Watch(U)]
    assert lifecycle.handle(Submitted(W, (U,))) == []
    assert lifecycle.statistics() == LifecycleStatistics(2, 0, 0, watched_upstreams=1)
    assert lifecycle.handle(UpstreamFinished(U)) == [Dispatch(V), Dispatch(W)]
    assert lifecycle.statistics() == LifecycleStatistics(0, 2, 0, watched_upstreams=0)


@pytest.mark.parametrize("order", list(itertools.permutations((U, V, W))))
def test_a_run_is_released_by_its_last_upstream_in_any_order(order: tuple[uuid.UUID, ...]) -> None:
    lifecycle = RunLifecycle()
    assert lifecycle.handle(Submitted(R, (U, V, W))) == [Watch(U), Watch(V), Watch(W)]
    first, second, last = order
    assert feed(lifecycle, UpstreamFinished(first), UpstreamFinished(second)) == []
    assert lifecycle.phase(R) is WAITING
    assert lifecycle.handle(UpstreamFinished(last)) == [Dispatch(R)]
    assert lifecycle.statistics() == LifecycleStatistics(0, 1, 0, watched_upstreams=0)


def test_an_upstream_finishing_after_its_dependent_was_cancelled_does_not_dispatch_it() -> None:
    lifecycle = RunLifecycle()
    feed(lifecycle, Submitted(R, (U, V)), UpstreamFinished(V))
    assert lifecycle.handle(CancelRequested(STOP)) == [End(R, CANCELLED, STOP)]
    # a run submitted after the cancel waits on the same, still watched, upstream
    assert lifecycle.handle(Submitted(W, (U,))) == []
    assert lifecycle.handle(UpstreamFinished(U)) == [Dispatch(W)]
    assert lifecycle.phase(R) is None
    assert lifecycle.statistics() == LifecycleStatistics(0, 1, 0, watched_upstreams=0)


# -- cancelling many runs at once -----------------------------------------------------------


@pytest.mark.parametrize("crash_running", [False, True])
def test_a_cancel_ends_what_is_not_running_and_revokes_what_was_dispatched(
    crash_running: bool,
) -> None:
    lifecycle = RunLifecycle()
    feed(lifecycle, Submitted(U), Submitted(V), AttemptEnded(V, 3.0), Submitted(W, (U,)))
    assert lifecycle.statistics() == LifecycleStatistics(1, 1, 1, watched_upstreams=1)
    instructions = lifecycle.handle(CancelRequested(STOP, crash_running))
    assert sorted(instructions, key=repr) == sorted(
        [Revoke(U), End(V, CANCELLED, STOP), End(W, CANCELLED, STOP)], key=repr
    )
    assert [lifecycle.phase(run) for run in (U, V, W)] == [DISPATCHED, None, None]
    assert lifecycle.handle(RetryDue(V)) == []  # the timer was already running
    # U is running: only a crash_running request marks it
    marks = [Mark(U, STOP)] if crash_running else []
    assert lifecycle.handle(Revoked(U, running=True)) == marks
    # U's attempt asks for a retry; being cancelled, it ends instead, and releases W's upstream
    assert lifecycle.handle(AttemptEnded(U, 1.0)) == [End(U, CANCELLED, STOP)]
    assert lifecycle.handle(UpstreamFinished(U)) == []
    assert lifecycle.statistics() == NOTHING_HELD


def test_a_revoked_arriving_after_the_cancelled_run_ended_yields_nothing() -> None:
    """A run whose call was lost during a cancel leaves no pending cancel behind."""
    lifecycle = lifecycle_in("crashing")
    assert lifecycle.handle(AttemptLost(R, CANCELLED, LOST)) == [End(R, CANCELLED, LOST)]
    assert lifecycle.handle(Revoked(R, running=True)) == []
    assert lifecycle.statistics() == NOTHING_HELD


# -- statistics and release -----------------------------------------------------------------


def test_statistics_count_each_phase_and_the_watched_upstreams() -> None:
    lifecycle = RunLifecycle()
    assert lifecycle.statistics() == NOTHING_HELD
    feed(lifecycle, Submitted(U), Submitted(V), AttemptEnded(V, 1.0))
    feed(lifecycle, Submitted(W, (U, V)), Submitted(R, (U,)))
    assert lifecycle.statistics() == LifecycleStatistics(
        waiting=2, dispatched=1, retry_wait=1, watched_upstreams=2
    )


def test_everything_is_released_once_every_run_has_finished() -> None:
    """U retries once and then resolves; V, downstream of U, is lost; R, downstream of both,
    is released by them and resolves. Nothing is held afterwards."""
    lifecycle = RunLifecycle()
    assert feed(lifecycle, Submitted(U), Submitted(V, (U,)), Submitted(R, (U, V))) == [
        Dispatch(U), Watch(U), Watch(V),
    ]
    assert feed(lifecycle, AttemptEnded(U, 0.5), RetryDue(U), AttemptEnded(U)) == [
        StartTimer(U, 0.5), Dispatch(U), Resolve(U),
    ]
    assert lifecycle.handle(UpstreamFinished(U)) == [Dispatch(V)]
    assert lifecycle.handle(AttemptLost(V, CRASHED, DIED)) == [End(V, CRASHED, DIED)]
    assert lifecycle.handle(UpstreamFinished(V)) == [Dispatch(R)]
    assert lifecycle.handle(AttemptEnded(R)) == [Resolve(R)]
    assert lifecycle.statistics() == NOTHING_HELD
    assert [lifecycle.phase(run) for run in (U, V, R)] == [None, None, None]


def test_a_run_whose_workers_keep_dying_retries_then_ends_as_the_last_event_says() -> None:
    """R's first two attempts are lost with a retry left each time; the third is lost with
    none, and the driver's verdict (FAILED: every attempt died) ends it. Its downstream V is
    released only then, once."""
    lifecycle = RunLifecycle()
    assert feed(lifecycle, Submitted(R), Submitted(V, (R,))) == [Dispatch(R), Watch(R)]
    for _ in range(2):
        assert lifecycle.handle(AttemptLost(R, CRASHED, DIED, 0.0)) == [Requeue(R, DIED), StartTimer(R, 0.0)]
        assert lifecycle.statistics() == LifecycleStatistics(1, 0, 1, watched_upstreams=1)
        assert lifecycle.handle(RetryDue(R)) == [Dispatch(R)]
    assert lifecycle.handle(AttemptLost(R, FAILED, POISON)) == [End(R, FAILED, POISON)]
    assert lifecycle.handle(UpstreamFinished(R)) == [Dispatch(V)]
    assert lifecycle.handle(AttemptEnded(V)) == [Resolve(V)]
    assert lifecycle.statistics() == NOTHING_HELD


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_the_hot_path_forms_do_what_their_events_do(setup: str) -> None:
    """`submitted_ready` and `attempt_resolved`, which the driver calls without making event
    and instruction objects, leave each phase as `Submitted(R)` and `AttemptEnded(R)` do."""
    by_event, by_call = lifecycle_in(setup), lifecycle_in(setup)
    try:
        expected: list[Instruction] | type[ValueError] = by_event.handle(Submitted(R))
    except ValueError:
        expected = ValueError
    if expected is ValueError:
        with pytest.raises(ValueError, match="submitted twice"):
            by_call.submitted_ready(R)
    else:
        by_call.submitted_ready(R)
        assert expected == [Dispatch(R)]
    assert by_call.phase(R) == by_event.phase(R)

    by_event, by_call = lifecycle_in(setup), lifecycle_in(setup)
    ended = by_event.handle(AttemptEnded(R))
    assert by_call.attempt_resolved(R) == (ended == [Resolve(R)])
    assert ended in ([], [Resolve(R)])
    assert (by_call.phase(R), by_call.statistics()) == (by_event.phase(R), by_event.statistics())
    assert by_call._cancelling == by_event._cancelling
