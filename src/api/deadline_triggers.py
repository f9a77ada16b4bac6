"""Deadline triggers: "expect `sales.table.refreshed` for `warehouse.sales` by 09:00
Europe/Berlin every weekday". The schedule's ticks (a cron expression, `schedules.py`, DST
policy included) are the deadlines; the window of a deadline runs from the tick before it.
When a deadline passes with fewer than `threshold` expected events counted in its window,
the trigger fires, once per missed window per `for_each` bucket (a bucket is known once an
event of its key was seen; without `for_each` there is one bucket from the start). Time
comes from the events and the clock the loop passes in, so evaluation is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .event_store import Event
from .schedules import Cron, ticks
from .triggers import EventTrigger, Firing, bucket_key, is_expected, matches_resources

_NO_KEY = "{}"


class DeadlineTrigger(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["deadline"] = "deadline"
    expect: EventTrigger  # what counts: its expect, match, match_related and for_each
    cron: str  # the deadlines, e.g. "0 9 * * 1-5"
    timezone: str = "UTC"
    threshold: int = Field(default=1, ge=1)

    def schedule(self) -> Cron:
        return Cron(self.cron, timezone=self.timezone)  # refuses a bad expression or zone, naming it

    def to_dict(self) -> dict[str, Any]:
        return {"type": "deadline", "expect": self.expect.to_dict(), "cron": self.cron, "timezone": self.timezone,
                "threshold": self.threshold}  # fmt: skip


@dataclass
class DeadlineState:
    checked_until: float | None = None  # deadlines up to here were decided
    seen: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # bucket -> (event id, time)

    def to_json(self) -> dict[str, Any]:
        return {"checked_until": self.checked_until, "seen": {k: [list(e) for e in v] for k, v in sorted(self.seen.items())}}

    @classmethod
    def from_json(cls, data: Any) -> DeadlineState:
        if not data or "seen" not in data:
            return cls()
        return cls(data.get("checked_until"), {k: [(str(i), float(t)) for i, t in v] for k, v in data["seen"].items()})


def deadline_from_dict(data: dict[str, Any]) -> DeadlineTrigger:
    made = DeadlineTrigger.model_validate({**data, "expect": EventTrigger.from_dict(data["expect"])})
    made.schedule()
    return made


def evaluate_deadline(trigger: DeadlineTrigger, state: DeadlineState, event: Event) -> list[Firing]:
    """Count an expected event in its bucket (deadlines are decided by `tick_deadline`)."""
    expect = trigger.expect
    if not is_expected(expect, event) or not matches_resources(expect, event):
        return []
    state.seen.setdefault(bucket_key(expect, event), []).append((str(event.id), event.occurred))
    return []


def tick_deadline(trigger: DeadlineTrigger, state: DeadlineState, now: float) -> list[Firing]:
    """Decide every deadline that passed since the last look: a bucket with fewer than
    `threshold` events in the window ending there fires, once for that window."""
    if state.checked_until is None:
        state.checked_until = now  # deadlines before the trigger existed are not judged
        if not trigger.expect.for_each:
            state.seen.setdefault(_NO_KEY, [])
        return []
    deadlines = ticks(trigger.schedule(), _utc(state.checked_until), _utc(now))
    fired: list[Firing] = []
    for deadline in deadlines:
        end = deadline.timestamp()
        previous = ticks(trigger.schedule(), _utc(end - 400 * 86400), _utc(end - 1e-3))
        start = previous[-1].timestamp() if previous else end - 86400
        for key, seen in state.seen.items():
            counted = [i for i, t in seen if start < t <= end]
            if len(counted) < trigger.threshold:
                fired.append(Firing(key, start, end, counted,
                                    f"{len(counted)} of {trigger.threshold} expected events by {deadline.isoformat()}"))  # fmt: skip
            state.seen[key] = [(i, t) for i, t in seen if t > end]
        state.checked_until = end
    if deadlines:
        state.checked_until = max(state.checked_until, now)
    return fired


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)
