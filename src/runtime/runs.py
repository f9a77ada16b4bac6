"""The run records the runtime keeps in memory, and the one place a run changes state.

`TaskRun` and `FlowRun` are what hooks receive and what the state service records. Every
state change of every run goes through `set_state`, which enforces the transition table,
keeps the run's history and tells the observers (the state-service recorder, when one is on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from random import getrandbits
from typing import Any
from uuid import UUID

from .states import State, transition

# Run ids are random version-4 UUIDs, so any prefix tells runs apart (the CLI accepts and
# shows short prefixes). `random.getrandbits` is reseeded in forked children and is several
# times cheaper than `uuid.uuid4`, which reads os.urandom on every call; run ids are
# identifiers, not secrets.
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)


def new_run_id() -> UUID:
    return UUID(int=(getrandbits(128) & _VERSION_MASK) | _VERSION_4)


@dataclass(slots=True, eq=False)
class TaskRun:
    id: UUID
    name: str
    task_name: str
    flow_run_id: UUID | None
    tags: tuple[str, ...] = ()
    state: State | None = None
    history: list[State] = field(default_factory=list, repr=False)
    run_count: int = 0
    # parameter name -> ids of the upstream runs whose results fed it (lineage)
    upstream: dict[str, tuple[UUID, ...]] = field(default_factory=dict, repr=False)
    start_time: float | None = None
    end_time: float | None = None

    @property
    def kind(self) -> str:
        return "task"


@dataclass(slots=True, eq=False)
class FlowRun:
    id: UUID
    name: str
    flow_name: str
    parameters: dict[str, Any] = field(default_factory=dict, repr=False)
    parent_flow_run_id: UUID | None = None
    parent_task_run_id: UUID | None = None
    tags: tuple[str, ...] = ()
    state: State | None = None
    history: list[State] = field(default_factory=list, repr=False)
    run_count: int = 0
    start_time: float | None = None
    end_time: float | None = None

    @property
    def kind(self) -> str:
        return "flow"


Run = TaskRun | FlowRun
StateObserver = Callable[[Run, State], None]
_observers: list[StateObserver] = []


def add_state_observer(observer: StateObserver) -> None:
    """Call `observer(run, state)` after every state change of every run in this process."""
    _observers.append(observer)


def remove_state_observer(observer: StateObserver) -> None:
    _observers.remove(observer)


def set_state(run: Run, proposed: State) -> State:
    """Move `run` to `proposed` if the state machine allows it; record and announce it."""
    state = transition(run.state, proposed)
    run.state = state
    run.history.append(state)
    for observer in _observers:
        observer(run, state)
    return state
