"""Schedules: each kind's ticks, the DST policy, content keys, validation and round trips.

Real croniter and dateutil throughout; the instants are worked out by hand in the comments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from headwater.api.schedules import (
    MAX_TICKS,
    Cron,
    Interval,
    RRule,
    Schedule,
    Tick,
    content_key,
    parse_interval,
    preview,
    schedule_from_dict,
    ticks,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- each kind over a window ------------------------------------------------------------


def test_cron_ticks_in_utc() -> None:
    assert ticks(Cron("*/15 9 * * *"), utc(2026, 1, 5, 9, 0), utc(2026, 1, 5, 10, 0)) == [
        utc(2026, 1, 5, 9, 15), utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 9, 45),
    ]  # after is excluded, until included


def test_cron_ticks_in_a_zone_are_utc_instants() -> None:
    # 09:00 in New York in January is EST, UTC-5.
    found = ticks(Cron("0 9 * * 1-5", "America/New_York"), utc(2026, 1, 1), utc(2026, 1, 6))
    assert found == [utc(2026, 1, 1, 14), utc(2026, 1, 2, 14), utc(2026, 1, 5, 14)]
    assert all(t.tzinfo is UTC for t in found)


def test_cron_day_or() -> None:
    window = (utc(2026, 3, 1), utc(2026, 3, 31))
    # The 12th or a Friday (cron's rule), against a 13th that is a Friday (only 2026-03-13).
    assert [t.day for t in ticks(Cron("0 0 12 * 5"), *window)] == [6, 12, 13, 20, 27]
    assert ticks(Cron("0 0 13 * 5", day_or=False), *window) == [utc(2026, 3, 13)]


def test_interval_ticks_from_the_anchor() -> None:
    schedule = Interval(timedelta(minutes=45), anchor_date=utc(2026, 1, 1, 0, 10))
    assert ticks(schedule, utc(2026, 1, 1, 1, 0), utc(2026, 1, 1, 3, 0)) == [
        utc(2026, 1, 1, 1, 40), utc(2026, 1, 1, 2, 25),
    ]


def test_interval_default_anchor_is_2020_in_its_zone() -> None:
    schedule = Interval(timedelta(hours=1), timezone="Asia/Kolkata")  # UTC+05:30
    assert schedule.anchor_date == datetime(2020, 1, 1, tzinfo=ZoneInfo("Asia/Kolkata"))
    assert ticks(schedule, utc(2026, 1, 1), utc(2026, 1, 1, 1)) == [utc(2026, 1, 1, 0, 30)]


def test_interval_has_ticks_before_its_anchor() -> None:
    schedule = Interval(timedelta(hours=6), anchor_date=utc(2030, 1, 1, 3))
    assert ticks(schedule, utc(2026, 1, 1), utc(2026, 1, 1, 12)) == [utc(2026, 1, 1, 3), utc(2026, 1, 1, 9)]


def test_sub_day_interval_steps_in_absolute_time_across_dst() -> None:
    schedule = Interval(timedelta(hours=1), anchor_date=utc(2026, 1, 1), timezone="Europe/Berlin")
    found = ticks(schedule, utc(2026, 3, 28, 23), utc(2026, 3, 29, 3))
    assert found == [utc(2026, 3, 29, h) for h in range(4)]  # four ticks one hour apart


def test_rrule_ticks() -> None:
    schedule = RRule("FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=8;BYMINUTE=0", "Europe/Berlin")
    # 08:00 CET is 07:00 UTC; 2026-01-05 is a Monday.
    assert ticks(schedule, utc(2026, 1, 4), utc(2026, 1, 12)) == [utc(2026, 1, 5, 7), utc(2026, 1, 7, 7)]


@pytest.mark.parametrize("dtstart", [
    "DTSTART:20260105T090000",  # floating: wall-clock time in the schedule's zone
    "DTSTART;TZID=Europe/Berlin:20260105T090000",
    "DTSTART:20260105T080000Z",
])
def test_rrule_dtstart_forms_mean_the_same(dtstart: str) -> None:
    schedule = RRule(f"{dtstart}\nRRULE:FREQ=DAILY;COUNT=3", "Europe/Berlin")
    assert ticks(schedule, utc(2026, 1, 1), utc(2026, 2, 1)) == [utc(2026, 1, d, 8) for d in (5, 6, 7)]


def test_rrule_until_in_utc() -> None:
    schedule = RRule("DTSTART:20260105T090000\nRRULE:FREQ=DAILY;UNTIL=20260106T080000Z", "Europe/Berlin")
    assert ticks(schedule, utc(2026, 1, 1), utc(2026, 2, 1)) == [utc(2026, 1, 5, 8), utc(2026, 1, 6, 8)]


# --- DST: a skipped wall time runs once when the clocks jump, a repeated one at its first ----


SPRING = (utc(2026, 3, 28), utc(2026, 3, 31))  # Berlin: 02:00 CET -> 03:00 CEST on the 29th
AUTUMN = (utc(2026, 10, 24), utc(2026, 10, 27))  # Berlin: 03:00 CEST -> 02:00 CET on the 25th
AT_0230_BERLIN: list[Schedule] = [
    Cron("30 2 * * *", "Europe/Berlin"),
    Interval(timedelta(days=1), anchor_date=datetime(2020, 1, 1, 2, 30, tzinfo=BERLIN), timezone="Europe/Berlin"),
    RRule("FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "Europe/Berlin"),
]


@pytest.mark.parametrize("schedule", AT_0230_BERLIN, ids=["cron", "interval", "rrule"])
def test_spring_forward_runs_once_when_the_clocks_jump(schedule: Schedule) -> None:
    assert ticks(schedule, *SPRING) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST, the jump
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


@pytest.mark.parametrize("schedule", AT_0230_BERLIN, ids=["cron", "interval", "rrule"])
def test_fall_back_runs_once_at_the_first_occurrence(schedule: Schedule) -> None:
    assert ticks(schedule, *AUTUMN) == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 happens twice: the first, CEST
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]


def test_daily_wall_clock_time_holds_across_dst() -> None:
    schedule = Interval(timedelta(days=1), anchor_date=datetime(2026, 1, 1, 9, tzinfo=BERLIN), timezone="Europe/Berlin")
    local = [t.astimezone(BERLIN) for t in ticks(schedule, utc(2026, 3, 27), utc(2026, 3, 31))]
    assert [(t.day, t.hour, t.minute) for t in local] == [(27, 9, 0), (28, 9, 0), (29, 9, 0), (30, 9, 0)]


def test_hourly_cron_across_dst() -> None:
    hourly = Cron("30 * * * *", "Europe/Berlin")
    # Spring: 00:30, 01:30 CET, then the missing 02:30 at the jump (03:00 CEST), then 03:30 CEST.
    assert ticks(hourly, utc(2026, 3, 28, 23), utc(2026, 3, 29, 2)) == [
        utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30),
    ]
    # Autumn: 02:30 CEST once, then 03:30 CET: a two-hour pause, the second 02:30 not run.
    assert ticks(hourly, utc(2026, 10, 25, 0), utc(2026, 10, 25, 3)) == [
        utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2, 30),
    ]


def test_several_skipped_times_collapse_into_one_tick() -> None:
    # 02:00, 02:20 and 02:40 do not exist on 2026-03-29 in Berlin; 03:00 does: one tick at 01:00 UTC.
    found = ticks(Cron("0,20,40 2,3 * * *", "Europe/Berlin"), utc(2026, 3, 29), utc(2026, 3, 29, 1, 30))
    assert found == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 20)]


def test_a_window_starting_inside_the_repeated_hour() -> None:
    # 01:15 UTC is 02:15 CET, the second pass: the day's 02:30 already ran at 00:30 UTC.
    assert ticks(Cron("30 2 * * *", "Europe/Berlin"), utc(2026, 10, 25, 1, 15), utc(2026, 10, 26, 12)) == [
        utc(2026, 10, 26, 1, 30),
    ]


# --- the cap ------------------------------------------------------------------------------


def test_ten_thousand_ticks_is_the_cap() -> None:
    start = utc(2026, 1, 1)
    assert len(ticks(Cron("* * * * *"), start, start + timedelta(minutes=MAX_TICKS))) == MAX_TICKS
    with pytest.raises(ValueError, match=r"more than 10000 ticks between 2026-01-01T00:00:00\+00:00 and "
                                         r"2026-01-07T22:41:00\+00:00; ask for a shorter window"):
        ticks(Cron("* * * * *"), start, start + timedelta(minutes=MAX_TICKS + 1))


def test_windows_need_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="after .* has no time zone; pass an aware datetime"):
        ticks(Cron("* * * * *"), datetime(2026, 1, 1), utc(2026, 1, 2))


# --- content keys -------------------------------------------------------------------------


def test_content_key_is_stable() -> None:
    one = Cron("0 9 * * *", "Europe/Berlin", parameters={"a": 1, "b": [1, 2]})
    two = Cron("0  9 * * *", "Europe/Berlin", parameters={"b": [1, 2], "a": 1})
    assert content_key(one) == content_key(two) == content_key(schedule_from_dict(one.to_dict()))
    assert len(content_key(one)) == 64 and int(content_key(one), 16) >= 0


def test_content_key_ignores_active_slug_and_policies() -> None:
    base = Interval(timedelta(hours=1))
    paused = Interval(timedelta(hours=1), active=False, slug="hourly", overlap="allow_all", catchup="all",
                      max_lateness=timedelta(minutes=5))
    assert content_key(base) == content_key(paused)


def test_default_and_explicit_anchor_give_the_same_key() -> None:
    explicit = Interval(timedelta(hours=1), anchor_date=datetime(2019, 12, 31, 23, tzinfo=UTC), timezone="Europe/Berlin")
    assert content_key(Interval(timedelta(hours=1), timezone="Europe/Berlin")) == content_key(explicit)


@pytest.mark.parametrize("other", [
    Cron("0 9 * * *", "Europe/Paris"),
    Cron("0 10 * * *", "Europe/Berlin"),
    Cron("0 9 * * *", "Europe/Berlin", parameters={"x": 1}),
    Cron("0 9 * * *", "Europe/Berlin", day_or=False),
    RRule("FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0", "Europe/Berlin"),
])
def test_content_key_differs_when_timing_or_parameters_do(other: Schedule) -> None:
    assert content_key(other) != content_key(Cron("0 9 * * *", "Europe/Berlin"))


def test_content_key_of_intervals_differs_by_interval_and_anchor() -> None:
    keys = {content_key(s) for s in (
        Interval(timedelta(hours=1)), Interval(timedelta(hours=2)),
        Interval(timedelta(hours=1), anchor_date=utc(2026, 1, 1, 0, 30)),
    )}
    assert len(keys) == 3


# --- validation: each error names the bad value and what would do -----------------------


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Cron("61 * * * *"), r"cron '61 \* \* \* \*' is not a valid cron expression \(.*out of range.*\); expected five fields"),
    (lambda: Cron("every day"), r"cron 'every day' is not a valid cron expression \(.+\); expected five fields"),
    (lambda: Cron("0 0 31 2 *"), r"cron '0 0 31 2 \*' never fires"),
    (lambda: Cron("0 9 * * *", "Europe/Berlln"), r"timezone 'Europe/Berlln' is not a known IANA time zone; use a name such as 'Europe/Berlin'"),
    (lambda: Interval(timedelta(0)), r"interval datetime.timedelta\(0\) must be a positive timedelta"),
    (lambda: Interval(timedelta(seconds=-5)), r"interval .* must be a positive timedelta, e.g. timedelta\(minutes=15\)"),
    (lambda: Interval(900), r"interval 900 must be a positive timedelta, e.g. timedelta\(minutes=15\) or parse_interval\('15m'\)"),
    (lambda: RRule("FREQ=DAILLY"), r"rrule 'FREQ=DAILLY' is not a valid recurrence rule \(.*DAILLY.*\); expected e.g. 'FREQ=DAILY"),
    (lambda: RRule("DTSTART:2026\nRRULE:FREQ=DAILY"), r"is not a valid recurrence rule \(DTSTART line 'DTSTART:2026' not understood"),
    (lambda: Cron("* * * * *", overlap="queue"), r"overlap 'queue' is not a policy; expected one of 'skip', 'buffer_one', 'allow_all', 'cancel_other'"),
    (lambda: Cron("* * * * *", catchup="some"), r"catchup 'some' is not a policy; expected one of 'all', 'latest', 'skip'"),
    (lambda: Cron("* * * * *", max_lateness=timedelta(0)), r"max_lateness .* must be a positive timedelta or None"),
    (lambda: Cron("* * * * *", parameters={"when": datetime(2026, 1, 1)}), r"parameters .* must be a dict of JSON values \(.*not JSON serializable"),
])
def test_validation_errors(make: Callable[[], Schedule], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown schedule kind 'weekly'.*expected 'cron', 'interval' or 'rrule'"):
        schedule_from_dict({"kind": "weekly"})


# --- preview ------------------------------------------------------------------------------


def test_preview_marks_dst_changes() -> None:
    schedule = Cron("30 2 * * *", "Europe/Berlin")
    shown = preview(schedule, count=3, now=utc(2026, 3, 27, 12))
    assert [t.utc for t in shown] == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]
    assert [t.local.strftime("%d %H:%M %Z") for t in shown] == ["28 02:30 CET", "29 03:00 CEST", "30 02:30 CEST"]
    assert [t.dst_change for t in shown] == [None, "clocks go forward 1h before this tick (CET -> CEST)", None]
    back = preview(schedule, count=2, now=utc(2026, 10, 25, 0, 45))
    assert back[0] == Tick(utc(2026, 10, 26, 1, 30), datetime(2026, 10, 26, 2, 30, tzinfo=BERLIN),
                           "clocks go back 1h before this tick (CEST -> CET)")  # compared with `now`
    assert back[1].dst_change is None


def test_preview_defaults_to_now() -> None:
    shown = preview(Interval(timedelta(minutes=1)))
    assert len(shown) == 10 and shown[0].utc > datetime.now(UTC) - timedelta(minutes=1)


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", [
    Cron("30 2 * * *", "Europe/Berlin", False, active=False, parameters={"n": [1, "x"]}, slug="nightly",
         overlap="cancel_other", catchup="all", max_lateness=timedelta(minutes=10)),
    Interval(timedelta(hours=1, microseconds=5), anchor_date=datetime(2026, 1, 1, 9, tzinfo=ZoneInfo("America/New_York")),
             timezone="America/New_York", overlap="buffer_one"),
    Interval(timedelta(days=2), timezone="Europe/Berlin", catchup="skip"),
    RRule("DTSTART;TZID=Europe/Berlin:20260105T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO", "Europe/Berlin", slug="mondays"),
])
def test_round_trip_through_json(schedule: Schedule) -> None:
    data = json.loads(json.dumps(schedule.to_dict()))
    assert schedule_from_dict(data) == schedule
    assert data["kind"] in {"cron", "interval", "rrule"}


def test_to_dict_shapes() -> None:
    data = Interval(timedelta(minutes=15), timezone="Europe/Berlin", max_lateness=timedelta(seconds=90)).to_dict()
    assert data["interval"] == 900.0 and data["max_lateness"] == 90.0
    assert data["anchor_date"] == "2020-01-01T00:00:00+01:00"
    assert datetime.fromisoformat(data["anchor_date"]).utcoffset() == timedelta(hours=1)


# --- parse_interval -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("900", timedelta(seconds=900)), ("15m", timedelta(minutes=15)), ("1h30m", timedelta(hours=1, minutes=30)),
    ("2d", timedelta(days=2)), ("45s", timedelta(seconds=45)), (" 1D2H ", timedelta(days=1, hours=2)),
])
def test_parse_interval(text: str, expected: timedelta) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize("text", ["", "15 minutes", "1m1h", "1.5h", "-5", "h"])
def test_parse_interval_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not understood; give seconds \('900'\) or whole numbers of d, h, m, s"):
        parse_interval(text)


def test_parse_interval_refuses_zero() -> None:
    with pytest.raises(ValueError, match="interval '0m' must be longer than zero"):
        parse_interval("0m")


def test_parameters_must_be_a_dict() -> None:
    with pytest.raises(ValueError, match=r"parameters \[1, 2\] must be a dict of JSON values \(not a dict\)"):
        Cron("* * * * *", parameters=[1, 2])


def test_a_half_hour_dst_shift() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 -> 02:30 on 2026-10-04.
    schedule = Cron("15 2 * * *", "Australia/Lord_Howe")
    shown = preview(schedule, count=2, now=utc(2026, 10, 2, 12))
    assert [t.local.strftime("%d %H:%M") for t in shown] == ["03 02:15", "04 02:30"]
    assert shown[1].utc == utc(2026, 10, 3, 15, 30)  # 02:30 +11:00, the jump
    assert shown[1].dst_change == "clocks go forward 30m before this tick (+1030 -> +11)"
