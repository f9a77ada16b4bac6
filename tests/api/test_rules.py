"""The orchestration table, tested as a table: no server, no threads.

The last tests tie `api/rules.py` to `runtime/states.py`: the two must state one table.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from headwater.api import rules
from headwater.runtime import states
from headwater.runtime.states import State, StateType

ALL = sorted(rules.STATE_TYPES)
LEGAL = {
    None: {"PENDING", "SCHEDULED", "RUNNING"},
    "SCHEDULED": {"PENDING", "RUNNING", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"},
    "PENDING": {"PENDING", "RUNNING", "SCHEDULED", "CANCELLED", "CRASHED", "PAUSED", "FAILED", "CANCELLING"},
    "RUNNING": {"COMPLETED", "FAILED", "CRASHED", "CANCELLED", "PAUSED", "SCHEDULED", "CANCELLING"},
    "PAUSED": {"RUNNING", "PENDING", "FAILED", "CANCELLED", "CRASHED", "CANCELLING"},  # FAILED: a pause timed out
    "CANCELLING": {"CANCELLED", "CRASHED", "FAILED", "COMPLETED"},
    "COMPLETED": set(), "FAILED": set(), "CRASHED": set(), "CANCELLED": set(),
}  # fmt: skip


@pytest.mark.parametrize("current", [None, *ALL])
@pytest.mark.parametrize("proposed", ALL)
def test_transition_table(current: str | None, proposed: str) -> None:
    assert rules.is_allowed(current, proposed) == (proposed in LEGAL[current])


@pytest.mark.parametrize("current", ["FAILED", "CRASHED", "CANCELLED"])
@pytest.mark.parametrize("proposed", ["SCHEDULED", "PENDING", "RUNNING"])
def test_explicit_retry_leaves_a_failed_terminal_state(current: str, proposed: str) -> None:
    assert not rules.is_allowed(current, proposed)
    assert rules.is_allowed(current, proposed, retry=True)


def test_completed_is_final_even_for_a_retry() -> None:
    assert not rules.is_allowed("COMPLETED", "RUNNING", retry=True)


def test_rejection_message_names_run_from_and_to() -> None:
    message = rules.check_transition("abc", "COMPLETED", "RUNNING")
    assert message is not None and "abc" in message and "COMPLETED -> RUNNING" in message


def test_sub_state_names_must_match_their_type() -> None:
    assert rules.check_state("RUNNING", "Retrying") is None
    assert rules.check_state("COMPLETED", "Cached") is None
    assert "belongs to FAILED" in (rules.check_state("COMPLETED", "TimedOut") or "")
    assert "unknown state type" in (rules.check_state("DONE", "Done") or "")
    assert rules.check_state("PENDING", "AwaitingConcurrencySlot") is None


# -- the server's table and the runtime's are one table written twice ----------------------
# The api may not import the runtime, and the runtime imports the api only lazily (grpc), so
# rules.py spells the table in strings and runtime/states.py in StateType. These tests tie
# them: change one and not the other, and they fail.


def _runtime_state_constructors() -> dict[str, Callable[..., State]]:
    """Every public state constructor in runtime/states.py (`Scheduled`, `Cached`, ...)."""
    return {
        name: fn
        for name, fn in vars(states).items()
        if inspect.isfunction(fn) and fn.__module__ == states.__name__ and name[:1].isupper()
    }


def _build(constructor: Callable[..., State]) -> State:
    required = {
        p.name: "x"
        for p in inspect.signature(constructor).parameters.values()
        if p.default is inspect.Parameter.empty
    }
    return constructor(**required)


def test_state_types_agree_with_the_runtime() -> None:
    assert {t.value for t in StateType} == rules.STATE_TYPES


def test_terminal_states_agree_with_the_runtime() -> None:
    assert {t.value for t in states.TERMINAL} == rules.TERMINAL


def test_transition_table_agrees_with_the_runtime() -> None:
    runtime = {
        (None if current is None else current.value): {t.value for t in allowed}
        for current, allowed in states.ALLOWED.items()
    }
    server = {current: set(allowed) for current, allowed in rules.ALLOWED.items()}
    assert runtime == server


def test_every_runtime_sub_state_has_the_same_type_on_the_server() -> None:
    built = [_build(constructor) for constructor in _runtime_state_constructors().values()]
    assert len(built) >= 13  # guards the introspection itself
    runtime = {state.name: state.type.value for state in built}
    assert runtime == dict(rules.STATE_NAMES)
