"""Ready-set bookkeeping for task runs that wait on upstream runs. Pure: events in,
instructions out, no threads, no I/O, no clocks.

State kept (every entry leaves as soon as it is no longer needed, so a long flow holds only
what is still waiting):

- `remaining[run]`: how many distinct upstream runs `run` still waits for.
- `dependents[upstream]`: runs waiting on `upstream`. The first time an upstream appears here
  the graph emits `Watch(upstream)`: the driver subscribes to that run's completion exactly
  once, however many runs wait on it, and feeds back `Finished(upstream)`.

Events:  `Submitted(run, waiting_on)` -- a run whose listed upstreams are not finished yet.
         `Finished(run)` -- a watched run reached a final state (any outcome: deciding what a
         failed upstream means for its dependents is the task engine's job, not the graph's).
Instructions: `Watch(upstream)`, `Dispatch(run)` -- hand the run to its runner now.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Submitted:
    run_id: UUID
    waiting_on: tuple[UUID, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    run_id: UUID


@dataclass(frozen=True, slots=True)
class Watch:
    run_id: UUID


@dataclass(frozen=True, slots=True)
class Dispatch:
    run_id: UUID


Event = Submitted | Finished
Instruction = Watch | Dispatch


@dataclass(frozen=True, slots=True)
class GraphStatistics:
    waiting_runs: int
    watched_upstreams: int


class GraphState:
    """Which submitted runs wait on which unfinished upstreams. See the module docstring."""

    __slots__ = ("_remaining", "_dependents")

    def __init__(self) -> None:
        self._remaining: dict[UUID, int] = {}
        self._dependents: dict[UUID, list[UUID]] = {}

    def handle(self, event: Event) -> list[Instruction]:
        if isinstance(event, Submitted):
            return self._submitted(event)
        return self._finished(event)

    def _submitted(self, event: Submitted) -> list[Instruction]:
        upstreams = dict.fromkeys(event.waiting_on)  # distinct, in order
        if not upstreams:
            return [Dispatch(event.run_id)]
        if event.run_id in self._remaining:
            raise ValueError(f"run {event.run_id} was submitted twice")
        self._remaining[event.run_id] = len(upstreams)
        instructions: list[Instruction] = []
        for upstream in upstreams:
            waiting = self._dependents.get(upstream)
            if waiting is None:
                self._dependents[upstream] = [event.run_id]
                instructions.append(Watch(upstream))
            else:
                waiting.append(event.run_id)
        return instructions

    def _finished(self, event: Finished) -> list[Instruction]:
        instructions: list[Instruction] = []
        for run_id in self._dependents.pop(event.run_id, ()):
            left = self._remaining[run_id] - 1
            if left:
                self._remaining[run_id] = left
            else:
                del self._remaining[run_id]
                instructions.append(Dispatch(run_id))
        return instructions

    def statistics(self) -> GraphStatistics:
        return GraphStatistics(len(self._remaining), len(self._dependents))
