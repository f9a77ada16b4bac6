"""The state machine, as tables: every (from, to) pair is either allowed or raises."""

from __future__ import annotations

import itertools
import uuid

import pytest

from headwater.errors import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    HeadwaterError,
    InvalidTransition,
    UnfinishedRun,
    UpstreamFailed,
)
from headwater.runtime.states import (
    ALLOWED,
    TERMINAL,
    AwaitingRetry,
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    NotReady,
    Pending,
    Retrying,
    Running,
    State,
    StateType,
    TimedOut,
    transition,
)

ONE_OF_EACH = {t: State(t, t.value.title()) for t in StateType}

LEGAL = [
    (None, StateType.PENDING),
    (StateType.PENDING, StateType.RUNNING),
    (StateType.PENDING, StateType.PENDING),  # -> NotReady
    (StateType.RUNNING, StateType.COMPLETED),
    (StateType.RUNNING, StateType.FAILED),
    (StateType.RUNNING, StateType.SCHEDULED),  # -> AwaitingRetry
    (StateType.SCHEDULED, StateType.RUNNING),  # -> Retrying
    (StateType.PAUSED, StateType.RUNNING),
]
ILLEGAL = [
    (None, StateType.COMPLETED),
    (StateType.PENDING, StateType.COMPLETED),
    (StateType.RUNNING, StateType.PENDING),
    *[(t, other) for t in TERMINAL for other in StateType],
]


@pytest.mark.parametrize(("current", "proposed"), LEGAL)
def test_legal_transitions_return_the_proposed_state(current, proposed) -> None:
    before = None if current is None else ONE_OF_EACH[current]
    assert transition(before, ONE_OF_EACH[proposed]) is ONE_OF_EACH[proposed]


@pytest.mark.parametrize(("current", "proposed"), ILLEGAL)
def test_illegal_transitions_raise_naming_both_states(current, proposed) -> None:
    before = None if current is None else ONE_OF_EACH[current]
    with pytest.raises(InvalidTransition, match=proposed.value):
        transition(before, ONE_OF_EACH[proposed])


def test_table_covers_every_state_and_terminal_states_have_no_exit() -> None:
    assert set(ALLOWED) == {None, *StateType}
    assert all(not ALLOWED[t] for t in TERMINAL)
    for source, targets in ALLOWED.items():
        assert all(isinstance(t, StateType) for t in targets), source


@pytest.mark.parametrize(
    ("state", "kind", "name"),
    [
        (Pending(), StateType.PENDING, "Pending"),
        (NotReady("x"), StateType.PENDING, "NotReady"),
        (Running(), StateType.RUNNING, "Running"),
        (Retrying(), StateType.RUNNING, "Retrying"),
        (AwaitingRetry(), StateType.SCHEDULED, "AwaitingRetry"),
        (Completed(1), StateType.COMPLETED, "Completed"),
        (Cached(1), StateType.COMPLETED, "Cached"),
        (Failed(ValueError()), StateType.FAILED, "Failed"),
        (TimedOut(TimeoutError()), StateType.FAILED, "TimedOut"),
        (Crashed(KeyboardInterrupt()), StateType.CRASHED, "Crashed"),
        (Cancelled(), StateType.CANCELLED, "Cancelled"),
    ],
)
def test_sub_states_ride_on_their_type(state: State, kind: StateType, name: str) -> None:
    assert (state.type, state.name) == (kind, name)
    predicates = {
        StateType.PENDING: state.is_pending, StateType.RUNNING: state.is_running,
        StateType.COMPLETED: state.is_completed, StateType.FAILED: state.is_failed,
        StateType.CRASHED: state.is_crashed, StateType.CANCELLED: state.is_cancelled,
        StateType.SCHEDULED: state.is_scheduled,
    }  # fmt: skip
    assert [t for t, p in predicates.items() if p()] == [kind]


def test_result_returns_data_or_raises_the_original_exception() -> None:
    assert Completed(42).result() == 42
    error = ValueError("boom")
    with pytest.raises(ValueError) as raised:
        Failed(error).result()
    assert raised.value is error
    assert Failed(error).result(raise_on_failure=False) is error


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (NotReady("up failed"), UpstreamFailed),
        (Cancelled(), CancelledRun),
        (Crashed(), CrashedRun),
        (Failed(message="lost its exception"), FailedRun),
        (Running(), UnfinishedRun),
    ],
)
def test_result_of_states_without_an_exception_raises_a_named_error(state, error) -> None:
    with pytest.raises(error) as raised:
        state.result()
    assert isinstance(raised.value, HeadwaterError)


def test_message_defaults_to_the_exception_and_timestamp_is_utc() -> None:
    state = Failed(ValueError("bad input"))
    assert state.message == "ValueError: bad input"
    assert state.timestamp.tzinfo is not None
    assert str(Completed()) == "Completed()"


def test_every_pair_is_decided() -> None:
    for current, proposed in itertools.product([None, *StateType], StateType):
        before = None if current is None else ONE_OF_EACH[current]
        allowed = proposed in ALLOWED[current]
        try:
            transition(before, ONE_OF_EACH[proposed])
        except InvalidTransition:
            assert not allowed
        else:
            assert allowed


def test_run_ids_are_random_v4_uuids_whose_short_prefixes_differ() -> None:
    from headwater.runtime.runs import new_run_id

    ids = [new_run_id() for _ in range(1000)]
    assert all(i.version == 4 for i in ids)
    assert len({str(i)[:8] for i in ids}) > 990  # the CLI's short ids tell runs apart


def test_task_run_ids_are_time_ordered_v7_uuids_whose_last_digits_differ() -> None:
    import time

    from headwater.runtime.runs import new_task_run_id

    before = time.time_ns() // 1_000_000
    ids = [new_task_run_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(before <= i.int >> 80 <= after for i in ids)  # the millisecond each was made
    assert [i.int >> 80 for i in ids] == sorted(i.int >> 80 for i in ids)
    assert len({str(i)[-8:] for i in ids}) > 990  # the CLI shows these digits for a task run
