"""When a deployment runs on its own: the schedule model and its ticks, pure (no I/O, no clock).

`Cron` (a cron expression, read by croniter), `Interval` (every so long from an anchor that
fixes the phase; ticks before it exist too) and `RRule` (an RFC 5545 rule, read by dateutil's
`rrulestr`, from its DTSTART line or 2020-01-01 00:00) each carry a timezone, `active`,
`parameters` (overriding the deployment's), `slug`, and the scheduler's policies: `overlap`
(`OVERLAP_POLICIES`), `catchup` (`CATCHUP_POLICIES`) and `max_lateness`. `ticks` gives the
nominal times in a window as aware UTC datetimes, `preview` the next few with their local time
and DST changes. `content_key` hashes what decides when and with what a schedule runs, so a
redeploy of the same content, or one that only pauses it, keeps the key its runs were made under.

Time zones and DST. Cron, rrule and whole-day interval ticks are computed in wall-clock time in
the schedule's zone, then each wall-clock time is turned into one instant:

- a wall-clock time that does not exist (clocks jump forward over it: 02:30 on 2026-03-29 in
  Europe/Berlin) runs once, at the instant the clocks jump (03:00 CEST = 01:00 UTC), and
  several such times collapse into that one tick;
- a wall-clock time that occurs twice (clocks go back: 02:30 on 2026-10-25 in Europe/Berlin)
  runs once, at its first occurrence (02:30 CEST = 00:30 UTC).

So "daily at 09:00" stays at 09:00 across DST, and an hourly cron pauses two hours when the
clocks go back (02:30 CEST, then 03:30 CET), as Prefect documents for cron. croniter is handed
naive wall-clock times: with an aware start it drops an hourly rule's nonexistent time (01:30,
then 03:30) and runs a repeated one twice (02:30 CEST and CET), which no post-processing of its
output can undo. Intervals not in whole days step in absolute time, whatever the clocks do.
rrule iterates from its DTSTART, so give a minutely rule a recent one; EXDATE and RDATE are
read in the schedule's zone.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter
from dateutil.rrule import rrulestr

OVERLAP_POLICIES = ("skip", "buffer_one", "allow_all", "cancel_other")
CATCHUP_POLICIES = ("all", "latest", "skip")
MAX_TICKS = 10_000
_DEFAULT_START = datetime(2020, 1, 1)  # wall-clock, in the schedule's zone
_DAY = timedelta(days=1)
_KEY_VERSION = 1  # bump if what content_key hashes changes meaning
_DTSTART = re.compile(r"DTSTART(?:;TZID=([^:;]+))?:(\d{8}T\d{6})(Z?)", re.IGNORECASE)
_UNTIL_UTC = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)
_STAMP = "%Y%m%dT%H%M%S"
_INTERVAL = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Common:
    """What every kind of schedule carries besides its timing (keyword-only)."""

    active: bool = True
    parameters: Mapping[str, Any] = field(default_factory=dict)
    slug: str | None = None
    overlap: str = "skip"
    catchup: str = "latest"
    max_lateness: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Cron(_Common):
    """Runs at the times a cron expression names, in `timezone`'s wall-clock time. `day_or`:
    with both day-of-month and day-of-week restricted, run on either (cron's rule) or both."""

    cron: str
    timezone: str = "UTC"
    day_or: bool = True

    def __post_init__(self) -> None:
        _check_common(self)
        try:
            croniter(self.cron, _DEFAULT_START, day_or=self.day_or).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"cron {self.cron!r} never fires (no such date); check the day and month fields") from None
        except (CroniterError, ValueError, TypeError) as exc:
            raise ValueError(f"cron {self.cron!r} is not a valid cron expression ({exc}); expected five "
                             "fields 'minute hour day-of-month month day-of-week', e.g. '30 2 * * *' "
                             "for 02:30 daily") from None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cron", "cron": self.cron, "timezone": self.timezone, "day_or": self.day_or,
                **_common_dict(self)}


@dataclass(frozen=True, slots=True)
class Interval(_Common):
    """Runs every `interval` from `anchor_date` (default 2020-01-01 00:00 in `timezone`; a naive
    anchor is read in `timezone`). Whole days step in wall-clock time, others in absolute time."""

    interval: timedelta
    anchor_date: datetime | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone = _check_common(self)
        if not isinstance(self.interval, timedelta) or self.interval <= timedelta(0):
            raise ValueError(f"interval {self.interval!r} must be a positive timedelta, e.g. "
                             "timedelta(minutes=15) or parse_interval('15m')")
        anchor = self.anchor_date if self.anchor_date is not None else _DEFAULT_START
        if anchor.tzinfo is None:
            object.__setattr__(self, "anchor_date", anchor.replace(tzinfo=zone))

    @property
    def anchor(self) -> datetime:
        assert self.anchor_date is not None  # __post_init__ fills it in
        return self.anchor_date

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "interval", "interval": self.interval.total_seconds(),
                "anchor_date": self.anchor.isoformat(), "timezone": self.timezone, **_common_dict(self)}


@dataclass(frozen=True, slots=True)
class RRule(_Common):
    """Runs at the times an RFC 5545 recurrence rule names, e.g. 'FREQ=DAILY;BYHOUR=9', or
    'DTSTART:20260101T090000\\nRRULE:FREQ=WEEKLY;BYDAY=MO', in `timezone`'s wall-clock time."""

    rrule: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone = _check_common(self)
        try:
            _wall_rule(self.rrule, zone)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"rrule {self.rrule!r} is not a valid recurrence rule ({exc}); expected e.g. "
                             "'FREQ=DAILY;BYHOUR=9;BYMINUTE=0', optionally after a line "
                             "'DTSTART:20260101T090000'") from None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "rrule", "rrule": self.rrule, "timezone": self.timezone, **_common_dict(self)}


Schedule: TypeAlias = Cron | Interval | RRule


@dataclass(frozen=True, slots=True)
class Tick:
    """One nominal run time: the instant, the schedule zone's wall-clock time, and a note when
    that zone's UTC offset changed since the previous tick (or since `now`, for the first)."""

    utc: datetime
    local: datetime
    dst_change: str | None = None


def _check_common(schedule: Schedule) -> ZoneInfo:
    for name, value, valid in (("overlap", schedule.overlap, OVERLAP_POLICIES),
                               ("catchup", schedule.catchup, CATCHUP_POLICIES)):
        if value not in valid:
            raise ValueError(f"{name} {value!r} is not a policy; expected one of {', '.join(map(repr, valid))}")
    lateness = schedule.max_lateness
    if lateness is not None and (not isinstance(lateness, timedelta) or lateness <= timedelta(0)):
        raise ValueError(f"max_lateness {lateness!r} must be a positive timedelta or None (no limit)")
    try:
        if not isinstance(schedule.parameters, Mapping):
            raise TypeError("not a dict")
        json.dumps(schedule.parameters, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"parameters {schedule.parameters!r} must be a dict of JSON values ({exc})") from None
    return _zone(schedule.timezone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"timezone {name!r} is not a known IANA time zone; use a name such as "
                         "'Europe/Berlin', 'America/New_York' or 'UTC'") from None


def _common_dict(schedule: Schedule) -> dict[str, Any]:
    lateness = schedule.max_lateness
    return {"active": schedule.active, "parameters": dict(schedule.parameters), "slug": schedule.slug,
            "overlap": schedule.overlap, "catchup": schedule.catchup,
            "max_lateness": None if lateness is None else lateness.total_seconds()}


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """The schedule `to_dict` described; `ValueError` for a dict of no known kind."""
    lateness = data.get("max_lateness")
    common: dict[str, Any] = {
        "active": bool(data.get("active", True)), "parameters": dict(data.get("parameters") or {}),
        "slug": data.get("slug"), "overlap": data.get("overlap", "skip"),
        "catchup": data.get("catchup", "latest"),
        "max_lateness": None if lateness is None else timedelta(seconds=float(lateness)),
    }
    zone = str(data.get("timezone", "UTC"))
    kind = data.get("kind")
    if kind == "cron":
        return Cron(str(data["cron"]), zone, bool(data.get("day_or", True)), **common)
    if kind == "interval":
        anchor = data.get("anchor_date")
        return Interval(timedelta(seconds=float(data["interval"])),
                        None if anchor is None else datetime.fromisoformat(anchor), zone, **common)
    if kind == "rrule":
        return RRule(str(data["rrule"]), zone, **common)
    raise ValueError(f"unknown schedule kind {kind!r} in {dict(data)!r}; expected 'cron', 'interval' or 'rrule'")


def content_key(schedule: Schedule) -> str:
    """A stable hex sha256 of what decides when and with what `schedule` runs: its kind, its
    expression or interval and anchor, its zone, `day_or` and parameters; not `active`, `slug`
    or the policies, so pausing or renaming it keeps the key its runs were made under."""
    what: dict[str, Any] = {"v": _KEY_VERSION, "timezone": schedule.timezone,
                            "parameters": schedule.parameters}
    if isinstance(schedule, Cron):
        what.update(kind="cron", cron=" ".join(schedule.cron.split()), day_or=schedule.day_or)
    elif isinstance(schedule, Interval):
        what.update(kind="interval", interval_us=schedule.interval // timedelta(microseconds=1),
                    anchor=schedule.anchor.astimezone(UTC).isoformat())
    else:
        what.update(kind="rrule", rrule="\n".join(_rrule_lines(schedule.rrule)))
    canonical = json.dumps(what, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def ticks(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """Every nominal time t with `after` < t <= `until`, as sorted aware UTC datetimes;
    `ValueError` past `MAX_TICKS` of them."""
    _check_aware(after, "after")
    _check_aware(until, "until")
    found: list[datetime] = []
    for instant in _instants(schedule, after):
        if instant > until:
            break
        if len(found) == MAX_TICKS:
            raise ValueError(f"{_describe(schedule)} has more than {MAX_TICKS} ticks between "
                             f"{after.isoformat()} and {until.isoformat()}; ask for a shorter window")
        found.append(instant)
    return found


def preview(schedule: Schedule, count: int = 10, now: datetime | None = None) -> list[Tick]:
    """The next `count` ticks after `now` (default: this moment), each with its local time and
    a note where the schedule zone's UTC offset changed."""
    now = datetime.now(UTC) if now is None else now
    _check_aware(now, "now")
    zone = _zone(schedule.timezone)
    previous = now.astimezone(zone)
    shown: list[Tick] = []
    for instant in islice(_instants(schedule, now), count):
        local = instant.astimezone(zone)
        shown.append(Tick(instant, local, _dst_change(previous, local)))
        previous = local
    return shown


def parse_interval(text: str) -> timedelta:
    """A positive interval from what a user typed: seconds ('900') or units d, h, m, s in that
    order ('15m', '1h30m', '2d', '45s')."""
    cleaned = text.strip().lower()
    match = _INTERVAL.fullmatch(cleaned)
    if cleaned.isdigit():
        value = timedelta(seconds=int(cleaned))
    elif cleaned and match is not None:
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    else:
        raise ValueError(f"interval {text!r} is not understood; give seconds ('900') or whole numbers "
                         "of d, h, m, s in that order ('15m', '1h30m', '2d', '45s')")
    if value <= timedelta(0):
        raise ValueError(f"interval {text!r} must be longer than zero, e.g. '15m'")
    return value


def _check_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} {moment!r} has no time zone; pass an aware datetime, e.g. datetime.now(UTC)")


def _describe(schedule: Schedule) -> str:
    what = (schedule.cron if isinstance(schedule, Cron) else schedule.rrule if isinstance(schedule, RRule)
            else f"every {_duration(schedule.interval)}")
    return f"{type(schedule).__name__.lower()} {what!r} ({schedule.timezone})"


def _instants(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """The schedule's instants after `after`, ascending and distinct, in UTC."""
    if isinstance(schedule, Interval) and schedule.interval % _DAY:  # not whole days: absolute
        anchor = schedule.anchor.astimezone(UTC)
        step = (after - anchor) // schedule.interval + 1
        while True:
            yield anchor + step * schedule.interval
            step += 1
    zone = _zone(schedule.timezone)
    last = after
    for wall in _walls(schedule, zone, after.astimezone(zone).replace(tzinfo=None)):
        instant = _instant(wall, zone)
        if instant > last:  # drops wall times at or before `after`, and a gap's repeats
            yield instant
            last = instant


def _walls(schedule: Schedule, zone: ZoneInfo, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock times in `zone`, ascending, every one after `start` (the wall time of
    `after`) and maybe a few before: `_instant` maps those to instants at or before `after`."""
    if isinstance(schedule, Cron):
        times = croniter(schedule.cron, start, day_or=schedule.day_or)
        try:
            while True:
                yield times.get_next(datetime)
        except CroniterBadDateError:  # no later date matches
            return
    elif isinstance(schedule, Interval):  # whole days
        origin = schedule.anchor.astimezone(zone).replace(tzinfo=None)
        step = (start - origin) // schedule.interval
        while True:
            yield origin + step * schedule.interval
            step += 1
    else:
        yield from _wall_rule(schedule.rrule, zone).xafter(start, inc=True)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The one instant a wall-clock time in `zone` runs at (the module's DST policy)."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    before, after = first.utcoffset(), second.utcoffset()
    assert before is not None and after is not None
    if before >= after:  # an ordinary time, or one that occurs twice: its first occurrence
        return first.astimezone(UTC)
    # Clocks jumped over it: find the instant they jumped, to the second (tz data's resolution).
    low = int(second.timestamp())  # wall - offset after the jump: before the jump
    high = math.ceil(first.timestamp())  # wall - offset before it, rounded up: after the jump
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _rrule_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


def _wall_rule(text: str, zone: ZoneInfo) -> Any:
    """`text` as a dateutil rruleset over naive wall-clock times in `zone`: a DTSTART (floating,
    UTC or with a TZID) and a UTC UNTIL are moved into the zone's wall-clock time."""
    start = _DEFAULT_START
    rest: list[str] = []
    for line in _rrule_lines(text):
        match = _DTSTART.fullmatch(line)
        if match is not None:
            start = _to_wall(match.group(2), match.group(1), bool(match.group(3)), zone)
        elif line.upper().startswith("DTSTART"):
            raise ValueError(f"DTSTART line {line!r} not understood: write DTSTART:YYYYMMDDTHHMMSS, optionally with Z or ;TZID=Zone")
        else:
            rest.append(_UNTIL_UTC.sub(lambda m: "UNTIL=" + _to_wall(m.group(1), None, True, zone).strftime(_STAMP), line))
    if not rest:
        raise ValueError("no RRULE given")
    return rrulestr("\n".join(rest), dtstart=start, forceset=True, ignoretz=True)


def _to_wall(stamp: str, tzid: str | None, utc: bool, zone: ZoneInfo) -> datetime:
    moment = datetime.strptime(stamp, _STAMP)
    if not utc and tzid is None:
        return moment  # floating: already wall-clock time in the schedule's zone
    source = UTC if utc or tzid is None else _zone(tzid)
    return moment.replace(tzinfo=source).astimezone(zone).replace(tzinfo=None)


def _dst_change(previous: datetime, local: datetime) -> str | None:
    old, new = previous.utcoffset(), local.utcoffset()
    if old is None or new is None or old == new:
        return None
    direction = "forward" if new > old else "back"
    return (f"clocks go {direction} {_duration(abs(new - old))} before this tick "
            f"({previous.tzname()} -> {local.tzname()})")


def _duration(span: timedelta) -> str:
    """'1h30m', '2d', '45s': the form parse_interval reads (fractions of seconds dropped)."""
    seconds = int(span.total_seconds())
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount) or f"{span.total_seconds()}s"
