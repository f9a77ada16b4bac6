"""Compound and sequence triggers over real stored events (`compound_triggers.py`), evaluated
by the automation store as the service does."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from headwater.api.compound_triggers import CompoundTrigger, SequenceTrigger, trigger_from_dict
from headwater.api.event_store import Event, EventStore
from headwater.api.triggers import EventTrigger

A, B = EventTrigger(expect={"a.done"}), EventTrigger(expect={"b.done"})


def _emit(events: EventStore, name: str, at: float) -> None:
    events.emit([Event(uuid.uuid4(), name, at, {"headwater.resource.id": "r"})])


def _firings(automation_stores: Any, trigger: Any, names: list[tuple[str, float]]) -> int:
    automations, events = automation_stores
    automations.create("c", trigger.to_dict(), [{"type": "do-nothing"}])
    for name, at in names:
        _emit(events, name, at)
    automations.evaluate(events)
    return len(automations.firings("c"))


T = time.time()


def test_all_of_two_fires_once_both_came_within_the_window(automation_stores: Any) -> None:
    assert _firings(automation_stores, CompoundTrigger(triggers=[A, B], require="all", within=60),
                    [("a.done", T), ("a.done", T + 1), ("b.done", T + 2)]) == 1  # fmt: skip


def test_all_of_two_does_not_fire_when_they_are_too_far_apart(automation_stores: Any) -> None:
    assert _firings(automation_stores, CompoundTrigger(triggers=[A, B], require="all", within=5),
                    [("a.done", T), ("b.done", T + 10)]) == 0  # fmt: skip


def test_any_fires_for_each_child_firing(automation_stores: Any) -> None:
    assert _firings(automation_stores, CompoundTrigger(triggers=[A, B], require="any"), [("a.done", T), ("b.done", T + 1)]) == 2


def test_a_sequence_fires_only_in_order(automation_stores: Any) -> None:
    assert _firings(automation_stores, SequenceTrigger(triggers=[A, B], within=60), [("b.done", T), ("a.done", T + 1)]) == 0


def test_a_sequence_in_order_fires(automation_stores: Any) -> None:
    assert _firings(automation_stores, SequenceTrigger(triggers=[A, B], within=60), [("a.done", T), ("b.done", T + 1)]) == 1


def test_definitions_round_trip_and_refuse_a_require_out_of_range() -> None:
    compound = CompoundTrigger(triggers=[A, B], require=2, within=30)
    assert trigger_from_dict(compound.to_dict()) == compound
    assert trigger_from_dict(SequenceTrigger(triggers=[A, B]).to_dict()).type == "sequence"
    with pytest.raises(ValueError, match="require=3 needs 1 to 2"):
        trigger_from_dict({**compound.to_dict(), "require": 3})
