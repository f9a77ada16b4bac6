"""Event trigger evaluation (issue #17): events in, firings out. Pure: no I/O, no clock.

Time is read from the events' `occurred` and from the `now` given to `tick`, so replaying the
same events and ticks over the same state gives the same firings. `evaluate` and `tick` update
the `TriggerState` they are given in place; its `to_json()` is plain JSON for the service to keep
in SQLite in the same transaction as the firings it returns (an outbox). After a failed commit,
reload the state from the database rather than reuse the updated object.

State per bucket (one per distinct value of the `for_each` labels; `"{}"` without them):

    Reactive:   events (id, occurred) counted, sliding: only those within `within` seconds
                of the newest are kept (all of them when `within` is 0). Reaching `threshold`
                fires once and empties the bucket. With `after`, `armed` says one was seen.
    Proactive:  window_start (None: no window), armed (open and still waiting), events
                counted in it. A window ends unmet at window_start + within: it fires once,
                and the firing is kept (`fired`) until late expected events make up the
                `threshold`: then it resolves (a `Resolution`), once.
                With `after`: an after-event opens the window; it closes when met or fired.
                Without:      windows follow each other, `within` long, from the first
                                evaluation (a matching event, or a tick for the `"{}"` bucket).

Names (`expect`, `after`) and label values (`match`, `match_related`) are patterns in which
`*` matches any run of characters; nothing else is special. A list of values means any of them.
`for_each` names resource labels, or `related:<role>:<label>` for a related resource's label.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .event_store import RESOURCE_ID, Event

STATE_VERSION = 1
ROLE = "headwater.resource.role"
Posture = Literal["Reactive", "Proactive"]
LabelPatterns = dict[str, str | list[str]]


class EventTrigger(BaseModel):
    """Prefect's event trigger: which events count, per what, and how many in how long."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    match: LabelPatterns = Field(default_factory=dict)
    match_related: LabelPatterns = Field(default_factory=dict)
    expect: set[str] = Field(default_factory=set)
    after: set[str] = Field(default_factory=set)
    for_each: set[str] = Field(default_factory=set)
    posture: Posture = "Reactive"
    threshold: int = Field(default=1, ge=1)
    within: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _proactive_needs_a_window(self) -> EventTrigger:
        if self.posture == "Proactive" and self.within <= 0:
            raise ValueError("a Proactive trigger needs `within` > 0: the seconds it waits for the expected events")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, sets as sorted lists, so equal triggers give equal dicts."""
        data = self.model_dump(mode="json")
        for name in ("expect", "after", "for_each"):
            data[name] = sorted(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventTrigger:
        return cls.model_validate(dict(data))


@dataclass(frozen=True, slots=True)
class Firing:
    """The trigger fired for `bucket` over [window_start, window_end]. `events`: the ids of
    the expected events counted in it (Reactive: those that made the threshold). `opened_by`:
    the event that opened the window (Reactive: the first counted; Proactive: the after-event;
    None for periodic windows)."""

    bucket: str
    window_start: float
    window_end: float
    events: list[str]
    reason: str
    opened_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Firing:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Resolution:
    """A proactive firing's expected events arrived late: the firing (same bucket, window
    and `opened_by`, so the same `firing_key`) is resolved. `events`: the late ones."""

    bucket: str
    window_start: float
    window_end: float
    events: list[str]
    reason: str
    opened_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Bucket:
    window_start: float | None = None
    armed: bool = False
    events: list[tuple[str, float]] = field(default_factory=list)
    opened_by: str | None = None
    last_fired: float | None = None
    fired: Firing | None = None
    late: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.events)

    def idle(self) -> bool:
        return self.window_start is None and not self.armed and not self.events and self.fired is None

    def to_json(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start, "armed": self.armed, "count": self.count,
            "events": [[i, t] for i, t in self.events], "opened_by": self.opened_by,
            "last_fired": self.last_fired, "fired": None if self.fired is None else self.fired.to_dict(),
            "late": list(self.late),
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Bucket:
        fired = data.get("fired")
        return cls(
            data.get("window_start"), bool(data.get("armed", False)),
            [(str(i), float(t)) for i, t in data.get("events", [])], data.get("opened_by"),
            data.get("last_fired"), None if fired is None else Firing.from_dict(fired), list(data.get("late", [])),
        )  # fmt: skip


@dataclass(slots=True)
class TriggerState:
    """One trigger's buckets, by bucket key. `to_json()` / `from_json()` round-trip exactly."""

    buckets: dict[str, Bucket] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "buckets": {k: b.to_json() for k, b in sorted(self.buckets.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TriggerState:
        if not data:
            return cls()
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"trigger state version {data.get('version')!r}, this headwater reads {STATE_VERSION}")
        return cls({str(k): Bucket.from_json(v) for k, v in data["buckets"].items()})


Outcome = Firing | Resolution


def evaluate(trigger: EventTrigger, state: TriggerState, event: Event) -> list[Outcome]:
    """Count `event` against `trigger`, updating `state`; what fired or resolved because of it.

    Reactive triggers only return `Firing`s. A proactive bucket is first brought up to the
    event's time (a window that ended unmet fires then, as `tick` would have), then the
    event may count in its window, resolve an earlier firing, or open a window."""
    if not matches_resources(trigger, event):
        return []
    key = bucket_key(trigger, event)
    bucket = state.buckets.setdefault(key, Bucket())
    if trigger.posture == "Reactive":
        out: list[Outcome] = list(_count_reactive(trigger, key, bucket, event))
    else:
        out = [*_advance(trigger, key, bucket, event.occurred), *_count_proactive(trigger, key, bucket, event)]
    if bucket.idle() and bucket.last_fired is None:
        del state.buckets[key]
    return out


def tick(trigger: EventTrigger, state: TriggerState, now: float) -> list[Firing]:
    """Fire every proactive window that ended unmet by `now` (once per window; windows missed
    back to back while no tick ran fire once together), and forget what is stale: reactive
    events older than `within`, buckets with nothing left to wait for."""
    fired: list[Firing] = []
    if trigger.posture == "Proactive" and not trigger.after and not trigger.for_each:
        state.buckets.setdefault("{}", Bucket())
    for key in sorted(state.buckets):
        bucket = state.buckets[key]
        if trigger.posture == "Proactive":
            if not trigger.after and bucket.window_start is None:
                _open(bucket, now, None)
            fired.extend(_advance(trigger, key, bucket, now))
        elif trigger.within > 0:
            bucket.events = [(i, t) for i, t in bucket.events if t >= now - trigger.within]
        if bucket.idle():
            del state.buckets[key]
    return fired


def firing_key(automation_id: str | UUID, firing: Firing | Resolution) -> str:
    """The firing's idempotency key: from the automation, the bucket, the window's start and
    the event that opened it. Stable across restarts; a `Resolution` gives its firing's key."""
    ident = [str(automation_id), firing.bucket, firing.window_start, firing.opened_by]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:32]


def would_trigger_itself(
    trigger: EventTrigger, action_event_names: set[str], action_resources: Iterable[Mapping[str, str]] | None = None
) -> bool:
    """True when the events the automation's own actions emit (names, `*` allowed) could be
    counted by `trigger` (an empty `expect` counts everything), so the automation could feed
    itself (Prefect #11470). Given the resources those events are about, a trigger whose
    `match` excludes all of them is safe."""
    if action_resources is not None:
        resources = list(action_resources)
        if resources and not any(_labels_match(trigger.match, r) for r in resources):
            return False
    patterns = trigger.expect or {"*"}
    return any(_globs_overlap(p, n) for p in patterns for n in action_event_names)


def matches_resources(trigger: EventTrigger, event: Event) -> bool:
    """The event's resource matches `match`, and one related resource matches `match_related`."""
    if not _labels_match(trigger.match, event.resource):
        return False
    return not trigger.match_related or any(_labels_match(trigger.match_related, r) for r in event.related)


def bucket_key(trigger: EventTrigger, event: Event) -> str:
    """The `for_each` labels' values as compact, sorted JSON (`"{}"` without `for_each`)."""
    values = {label: _label_value(event, label) for label in trigger.for_each}
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


# -- reactive ----------------------------------------------------------------------------


def _count_reactive(trigger: EventTrigger, key: str, bucket: Bucket, event: Event) -> list[Firing]:
    if trigger.after and not bucket.armed:
        bucket.armed = _name_matches(trigger.after, event.event)
        return []
    if not is_expected(trigger, event):
        return []
    bucket.events.append((str(event.id), event.occurred))
    bucket.events.sort(key=lambda e: e[1])
    if trigger.within > 0:
        newest = bucket.events[-1][1]
        bucket.events = [(i, t) for i, t in bucket.events if t >= newest - trigger.within]
    if bucket.count < trigger.threshold:
        return []
    start, end = bucket.events[0][1], bucket.events[-1][1]
    span = f" within {trigger.within:g}s" if trigger.within > 0 else ""
    firing = Firing(key, start, end, [i for i, _ in bucket.events],
                    f"{bucket.count} of {trigger.threshold} expected events{span}", bucket.events[0][0])  # fmt: skip
    bucket.events, bucket.armed, bucket.last_fired = [], False, end
    return [firing]


# -- proactive ---------------------------------------------------------------------------


def _open(bucket: Bucket, at: float, opened_by: str | None) -> None:
    bucket.window_start, bucket.armed, bucket.events, bucket.opened_by = at, True, [], opened_by


def _advance(trigger: EventTrigger, key: str, bucket: Bucket, now: float) -> list[Firing]:
    """End the bucket's window if `now` is past it: fire when unmet; a periodic trigger's next
    window starts where it ended (windows wholly missed since are fired with the unmet one)."""
    start, within = bucket.window_start, trigger.within
    if start is None or now <= start + within:
        return []
    periodic = not trigger.after
    passed = max(1, math.ceil((now - start) / within) - 1) if periodic else 1
    end = start + passed * within
    out: list[Firing] = []
    first_unmet = start if bucket.armed else start + within
    if first_unmet < end:
        got = [i for i, _ in bucket.events] if bucket.armed else []
        windows = round((end - first_unmet) / within)
        missed = f"{windows} windows" if windows > 1 else "the window"
        reason = (f"{len(got)} of {trigger.threshold} expected events in {missed} of {within:g}s"
                  + (f" after {bucket.opened_by}" if bucket.opened_by else ""))  # fmt: skip
        fired = Firing(key, first_unmet, end, got, reason, bucket.opened_by if bucket.armed else None)
        bucket.fired, bucket.late, bucket.last_fired = fired, [], end
        out.append(fired)
    if periodic:
        _open(bucket, end, None)
    else:
        bucket.window_start, bucket.armed, bucket.events, bucket.opened_by = None, False, [], None
    return out


def _count_proactive(trigger: EventTrigger, key: str, bucket: Bucket, event: Event) -> list[Outcome]:
    out: list[Outcome] = []
    at, ident = event.occurred, str(event.id)
    if not trigger.after and bucket.window_start is None:
        _open(bucket, at, None)
    if is_expected(trigger, event):
        fired = bucket.fired
        if fired is not None and at >= fired.window_start:
            bucket.late.append(ident)
            if len(fired.events) + len(bucket.late) >= trigger.threshold:
                reason = f"{len(bucket.late)} expected event(s) arrived after the window"
                out.append(Resolution(key, fired.window_start, fired.window_end, bucket.late, reason, fired.opened_by))
                bucket.fired, bucket.late = None, []
        if bucket.armed and bucket.window_start is not None and at >= bucket.window_start:
            bucket.events.append((ident, at))
            if bucket.count >= trigger.threshold:
                bucket.armed = False  # met: no firing (a periodic window stays until it ends)
                if trigger.after:
                    bucket.window_start, bucket.events, bucket.opened_by = None, [], None
            return out
    if trigger.after and bucket.window_start is None and _name_matches(trigger.after, event.event):
        _open(bucket, at, ident)
        bucket.fired, bucket.late = None, []
    return out


# -- matching ----------------------------------------------------------------------------


def is_expected(trigger: EventTrigger, event: Event) -> bool:
    """The event's name is one the trigger counts (`expect`; empty counts every name)."""
    return not trigger.expect or _name_matches(trigger.expect, event.event)


def _name_matches(patterns: Iterable[str], name: str) -> bool:
    return any(_glob(p).fullmatch(name) for p in patterns)


def _labels_match(wanted: LabelPatterns, labels: Mapping[str, str]) -> bool:
    for label, patterns in wanted.items():
        value = labels.get(label)
        options = [patterns] if isinstance(patterns, str) else patterns
        if value is None or not any(_glob(p).fullmatch(value) for p in options):
            return False
    return True


def _label_value(event: Event, label: str) -> str | None:
    if label.startswith("related:"):
        _, role, *rest = label.split(":", 2)
        name = rest[0] if rest else RESOURCE_ID
        for related in event.related:
            if related.get(ROLE) == role and name in related:
                return related[name]
        return None
    return event.resource.get(label)


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _globs_overlap(a: str, b: str) -> bool:
    """Whether some name matches both `*` patterns `a` and `b`."""

    @lru_cache(maxsize=None)
    def meet(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*" and (meet(i + 1, j) or (j < len(b) and meet(i, j + 1))):
            return True
        if j < len(b) and b[j] == "*" and (meet(i, j + 1) or (i < len(a) and meet(i + 1, j))):
            return True
        return i < len(a) and j < len(b) and a[i] == b[j] != "*" and meet(i + 1, j + 1)

    return meet(0, 0)
