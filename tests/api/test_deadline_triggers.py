"""Deadline triggers ("by 09:00 Europe/Berlin every day") over real stored events, with the
clock passed in: one firing per missed window per bucket, none for a window that was met."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from headwater.api.deadline_triggers import DeadlineTrigger
from headwater.api.event_store import Event, EventStore
from headwater.api.triggers import EventTrigger

BERLIN = ZoneInfo("Europe/Berlin")


def _at(day: int, hour: int) -> float:
    return datetime(2026, 12, day, hour, 0, tzinfo=BERLIN).timestamp()


def _refreshed(events: EventStore, table: str, at: float) -> None:
    events.emit([Event(uuid.uuid4(), "sales.table.refreshed", at, {"headwater.resource.id": table})])


def test_a_missed_deadline_fires_once_and_a_met_one_does_not(automation_stores: Any) -> None:
    automations, events = automation_stores
    sla = DeadlineTrigger(expect=EventTrigger(expect={"sales.table.refreshed"}), cron="0 9 * * *", timezone="Europe/Berlin")
    automations.create("sla", sla.to_dict(), [{"type": "do-nothing"}])
    automations.evaluate(events, now=_at(7, 6))  # the trigger starts watching
    _refreshed(events, "warehouse.sales", _at(7, 8))
    automations.evaluate(events, now=_at(7, 10))  # 09:00 on the 7th: met
    assert automations.firings("sla") == []
    automations.evaluate(events, now=_at(8, 10))  # 09:00 on the 8th: nothing came
    automations.evaluate(events, now=_at(8, 11))  # looked at again: still one firing
    (firing,) = automations.firings("sla")
    assert "0 of 1 expected events" in firing.body["reason"] and firing.body["window_end"] == _at(8, 9)


def test_for_each_fires_only_for_the_bucket_that_missed(automation_stores: Any) -> None:
    automations, events = automation_stores
    sla = DeadlineTrigger(expect=EventTrigger(expect={"sales.table.refreshed"}, for_each={"headwater.resource.id"}),
                          cron="0 9 * * *", timezone="Europe/Berlin")  # fmt: skip
    automations.create("per-table", sla.to_dict(), [{"type": "do-nothing"}])
    automations.evaluate(events, now=_at(7, 6))
    for table in ("warehouse.sales", "warehouse.stock"):
        _refreshed(events, table, _at(7, 8))
    automations.evaluate(events, now=_at(7, 10))
    _refreshed(events, "warehouse.sales", _at(8, 8))  # stock misses the 8th
    automations.evaluate(events, now=_at(8, 10))
    (firing,) = automations.firings("per-table")
    assert "warehouse.stock" in firing.body["bucket"]
