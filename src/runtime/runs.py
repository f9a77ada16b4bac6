"""The run records the runtime keeps in memory, and the one place a run changes state.

`TaskRun` and `FlowRun` are what hooks receive and what the state service records. Every
state change of every run goes through `set_state`, which enforces the transition table,
keeps the run's history and reports the change to the run's recorder, when it has one.

A `TaskRun` travels with its call: an in-process runner shares the flow's record (so the flow
sees each state as it happens), a process or cluster runner works on a pickled copy and the
flow applies the returned outcome to its own record (`adopt`). Both are plain data: identity,
tags, lineage and the history so far, which holds no run data (values and exceptions ride only
on final states, which are never shipped out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from random import getrandbits
from time import time_ns
from typing import Any
from uuid import UUID, SafeUUID

from .states import State, transition

# Flow run ids are random version-4 UUIDs, so any prefix tells them apart (the CLI accepts
# and shows short prefixes). Task run ids are version-7 UUIDs (RFC 9562): the millisecond
# they were made, then 74 random bits. The state service keeps a unique index on task run
# ids, and random keys land on a random page of it each: once a home held 300,000 task runs,
# inserting one cost 72 µs against 18 µs for time-ordered keys, which land on its last pages
# (a whole group commits a few pages, not one per run). Their first digits are shared by the
# runs of the same moment, so the CLI shows a task run by its last 8 digits and takes those
# as well as a prefix (`api/storage.py`, `resolve_id`). `random.getrandbits` is reseeded in
# forked children and is several times cheaper than `uuid.uuid4`, which reads os.urandom on
# every call; run ids are identifiers, not secrets.
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)
_VERSION_7 = (0x7000 << 64) | (0x8000 << 48)


_new_object = object.__new__
_set_attribute = object.__setattr__
_SAFE_UNKNOWN = SafeUUID.unknown  # read once: an enum member is a descriptor call on 3.11


def uuid_from_int(value: int) -> UUID:
    """`UUID(int=value)` without `UUID.__init__`'s argument checks (a third of the cost, and
    more than the rest of recording a state): callers pass a value in range by construction."""
    made = _new_object(UUID)
    _set_attribute(made, "int", value)
    _set_attribute(made, "is_safe", _SAFE_UNKNOWN)
    return made


def new_run_id() -> UUID:
    return uuid_from_int((getrandbits(128) & _VERSION_MASK) | _VERSION_4)


def new_task_run_id() -> UUID:
    """A version-7 UUID: 48 bits of Unix milliseconds first, then the version, variant and
    74 random bits."""
    return uuid_from_int((time_ns() // 1_000_000 << 80) | (getrandbits(80) & _VERSION_MASK) | _VERSION_7)


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
    #: attempts whose worker died under them (counted in `run_count` too); set by the flow
    lost_attempts: int = 0
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
#: Reports one state change of a run to the state service: `report(run, state)`, called
#: after `state` was appended to `run.history`.
Report = Callable[[Run, State], None]


def set_state(run: Run, proposed: State, report: Report | None = None) -> State:
    """Move `run` to `proposed` if the state machine allows it; keep it and report it."""
    state = transition(run.state, proposed)
    run.state = state
    run.history.append(state)
    if report is not None:
        report(run, state)
    return state
