"""Compound and sequence triggers, built from event triggers (`triggers.py`).

- `CompoundTrigger(triggers, require="any" | "all" | N, within)`: fires once `require` of its
  triggers have fired within `within` seconds of each other (the first of them opens the
  window), then starts over.
- `SequenceTrigger(triggers, within)`: fires once its triggers have fired in the order given,
  all within `within` seconds of the first; a trigger firing out of turn is not counted.

Each child keeps its own `TriggerState`; the compound's state is theirs plus what fired and
when, all plain JSON, and time comes from the events, so evaluation is deterministic like a
single trigger's (a replay after a restart makes the same firings).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .deadline_triggers import (
    DeadlineState,
    DeadlineTrigger,
    deadline_from_dict,
    evaluate_deadline,
    tick_deadline,
)
from .event_store import Event
from .triggers import EventTrigger, Firing, TriggerState, evaluate, tick, would_trigger_itself


class CompoundTrigger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["compound"] = "compound"
    triggers: list[EventTrigger] = Field(min_length=1)
    require: Literal["any", "all"] | int = "all"
    within: float = Field(default=0.0, ge=0)

    def needed(self) -> int:
        if self.require == "any":
            return 1
        if self.require == "all":
            return len(self.triggers)
        if not 1 <= self.require <= len(self.triggers):
            raise ValueError(f"require={self.require} needs 1 to {len(self.triggers)} (the triggers given)")
        return self.require

    def to_dict(self) -> dict[str, Any]:
        return {"type": "compound", "triggers": [t.to_dict() for t in self.triggers], "require": self.require,
                "within": self.within}  # fmt: skip


class SequenceTrigger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["sequence"] = "sequence"
    triggers: list[EventTrigger] = Field(min_length=2)
    within: float = Field(default=0.0, ge=0)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "sequence", "triggers": [t.to_dict() for t in self.triggers], "within": self.within}


AnyTrigger = EventTrigger | CompoundTrigger | SequenceTrigger | DeadlineTrigger


def trigger_from_dict(data: Mapping[str, Any]) -> AnyTrigger:
    kind = data.get("type", "event")
    if kind == "compound":
        made = CompoundTrigger.model_validate({**data, "triggers": [EventTrigger.from_dict(t) for t in data["triggers"]]})
        made.needed()  # refuses a require out of range, naming it
        return made
    if kind == "deadline":
        return deadline_from_dict(dict(data))
    if kind == "sequence":
        return SequenceTrigger.model_validate({**data, "triggers": [EventTrigger.from_dict(t) for t in data["triggers"]]})
    return EventTrigger.from_dict({k: v for k, v in data.items() if k != "type"})


@dataclass
class CompositeState:
    children: list[TriggerState]
    fired: list[tuple[int, float, list[str]]] = field(default_factory=list)  # (child, when, events)

    def to_json(self) -> dict[str, Any]:
        return {"children": [c.to_json() for c in self.children], "fired": [list(f) for f in self.fired]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, size: int) -> CompositeState:
        if not data or "children" not in data:
            return cls([TriggerState() for _ in range(size)])
        return cls([TriggerState.from_json(c) for c in data["children"]],
                   [(int(i), float(t), list(e)) for i, t, e in data.get("fired", [])])  # fmt: skip


def new_state(trigger: AnyTrigger, data: Mapping[str, Any] | None) -> TriggerState | CompositeState | DeadlineState:
    if isinstance(trigger, EventTrigger):
        return TriggerState.from_json(data or None)
    if isinstance(trigger, DeadlineTrigger):
        return DeadlineState.from_json(data)
    return CompositeState.from_json(data, len(trigger.triggers))


def evaluate_any(trigger: AnyTrigger, state: Any, event: Event) -> list[Any]:
    """`triggers.evaluate` for any trigger: its firings (and resolutions) for this event."""
    if isinstance(trigger, EventTrigger):
        return evaluate(trigger, state, event)
    if isinstance(trigger, DeadlineTrigger):
        return evaluate_deadline(trigger, state, event)
    fired = []
    for i, (child, child_state) in enumerate(zip(trigger.triggers, state.children)):
        fired += [(i, f) for f in evaluate(child, child_state, event) if isinstance(f, Firing)]
    return _combine(trigger, state, fired, event.occurred)


def tick_any(trigger: AnyTrigger, state: Any, now: float) -> list[Any]:
    if isinstance(trigger, EventTrigger):
        return tick(trigger, state, now) if trigger.posture == "Proactive" else []
    if isinstance(trigger, DeadlineTrigger):
        return tick_deadline(trigger, state, now)
    fired = []
    for i, (child, child_state) in enumerate(zip(trigger.triggers, state.children)):
        if child.posture == "Proactive":
            fired += [(i, f) for f in tick(child, child_state, now)]
    return _combine(trigger, state, fired, now)


def triggers_itself(trigger: AnyTrigger, action_events: set[str]) -> bool:
    if isinstance(trigger, DeadlineTrigger):
        return would_trigger_itself(trigger.expect, action_events)
    children = [trigger] if isinstance(trigger, EventTrigger) else trigger.triggers
    return any(would_trigger_itself(child, action_events) for child in children)


def is_proactive(trigger: AnyTrigger) -> bool:
    if isinstance(trigger, DeadlineTrigger):
        return True
    children = [trigger] if isinstance(trigger, EventTrigger) else trigger.triggers
    return any(child.posture == "Proactive" for child in children)


def _combine(trigger: CompoundTrigger | SequenceTrigger, state: CompositeState, fired: Iterable[tuple[int, Firing]],
             now: float) -> list[Firing]:  # fmt: skip
    out: list[Firing] = []
    for index, firing in fired:
        when = firing.window_end
        if trigger.within:
            state.fired = [f for f in state.fired if when - f[1] <= trigger.within]
        if isinstance(trigger, SequenceTrigger):
            if index != len(state.fired):  # out of turn: the sequence waits for the next in order
                continue
            state.fired.append((index, when, list(firing.events)))
            done = len(state.fired) == len(trigger.triggers)
            why = f"sequence of {len(trigger.triggers)} triggers completed in order"
        else:
            state.fired = [f for f in state.fired if f[0] != index] + [(index, when, list(firing.events))]
            done = len({f[0] for f in state.fired}) >= trigger.needed()
            why = f"{len(state.fired)} of {len(trigger.triggers)} triggers fired (require {trigger.require})"
        if done:
            start = min(f[1] for f in state.fired)
            events = [e for f in state.fired for e in f[2]]
            out.append(Firing("compound", start, when, events, why, state.fired[0][2][0] if state.fired[0][2] else None))
            state.fired = []
    return out
