"""Trigger evaluation (`api/triggers.py`): reactive and proactive postures, buckets, matching,
state through JSON, firing keys and the loop guard. Pure functions, so no server and no clock."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid5

import pytest
from pydantic import ValidationError

from headwater.api.event_store import RESOURCE_ID, Event
from headwater.api.triggers import (
    EventTrigger,
    Firing,
    Outcome,
    Resolution,
    TriggerState,
    bucket_key,
    evaluate,
    firing_key,
    tick,
    would_trigger_itself,
)

NS = UUID("00000000-0000-0000-0000-000000000017")


def ev(name: str, at: float, resource: str = "sales", *, n: int = 0, related: list[dict[str, str]] | None = None,
       **labels: str) -> Event:  # fmt: skip
    """An event with an id derived from its name, time and `n`, so runs are reproducible."""
    return Event(uuid5(NS, f"{name}@{at}#{n}"), name, at, {RESOURCE_ID: resource, **labels}, related or [])


def feed(trigger: EventTrigger, state: TriggerState, events: list[Event]) -> list[Outcome]:
    return [o for e in events for o in evaluate(trigger, state, e)]


def firings(outcomes: list[Outcome]) -> list[Firing]:
    return [o for o in outcomes if isinstance(o, Firing)]


# -- reactive ----------------------------------------------------------------------------

FAILED3 = EventTrigger(expect={"headwater.flow-run.Failed"}, threshold=3, within=60)


def test_reactive_threshold_fires_once_at_the_third_and_again_after_three_more() -> None:
    state = TriggerState()
    events = [ev("headwater.flow-run.Failed", t) for t in (0, 10, 20, 30, 40, 50, 55)]
    out = [evaluate(FAILED3, state, e) for e in events]
    assert [len(o) for o in out] == [0, 0, 1, 0, 0, 1, 0]
    first = out[2][0]
    assert isinstance(first, Firing)
    assert (first.bucket, first.window_start, first.window_end) == ("{}", 0, 20)
    assert first.events == [str(e.id) for e in events[:3]]
    assert first.opened_by == str(events[0].id)
    assert state.buckets["{}"].count == 1  # the seventh waits for two more


def test_reactive_events_spread_beyond_within_do_not_fire() -> None:
    state = TriggerState()
    assert feed(FAILED3, state, [ev("headwater.flow-run.Failed", t) for t in (0, 45, 90, 135, 180)]) == []
    assert state.buckets["{}"].count == 2  # the window slid: only the last two are within 60 s
    # one more inside the slid window makes three
    assert len(feed(FAILED3, state, [ev("headwater.flow-run.Failed", 190)])) == 1


def test_reactive_ignores_other_names_and_within_zero_counts_forever() -> None:
    trigger = EventTrigger(expect={"headwater.flow-run.Failed"}, threshold=2)
    state = TriggerState()
    out = feed(trigger, state, [ev("headwater.flow-run.Failed", 0), ev("headwater.flow-run.Completed", 1),
                                ev("headwater.flow-run.Failed", 10_000)])  # fmt: skip
    assert [(f.window_start, f.window_end) for f in firings(out)] == [(0, 10_000)]


def test_threshold_one_fires_on_each_event() -> None:
    trigger = EventTrigger(expect={"ping"})
    state = TriggerState()
    assert len(feed(trigger, state, [ev("ping", 1), ev("ping", 1, n=1), ev("ping", 2)])) == 3


def test_for_each_keeps_buckets_apart() -> None:
    trigger = FAILED3.model_copy(update={"for_each": {RESOURCE_ID}})
    state = TriggerState()
    events = [ev("headwater.flow-run.Failed", t, r) for t, r in ((0, "a"), (1, "b"), (2, "a"), (3, "b"), (4, "a"))]
    out = firings(feed(trigger, state, events))
    assert [f.bucket for f in out] == [json.dumps({RESOURCE_ID: "a"}, separators=(",", ":"))]
    assert state.buckets[bucket_key(trigger, events[1])].count == 2


def test_for_each_can_key_on_a_related_resource() -> None:
    trigger = EventTrigger(expect={"x"}, threshold=2, for_each={"related:flow"})
    flow = [{RESOURCE_ID: "headwater.flow.etl", "headwater.resource.role": "flow"}]
    other = [{RESOURCE_ID: "headwater.flow.other", "headwater.resource.role": "flow"}]
    out = feed(trigger, TriggerState(), [ev("x", 0, "run-1", related=flow), ev("x", 1, "run-2", related=other),
                                         ev("x", 2, "run-3", related=flow)])  # fmt: skip
    assert [f.bucket for f in firings(out)] == ['{"related:flow":"headwater.flow.etl"}']


@pytest.mark.parametrize(
    ("match", "resource", "hit"),
    [
        ({RESOURCE_ID: "headwater.flow-run.*"}, "headwater.flow-run.123", True),
        ({RESOURCE_ID: "headwater.flow-run.*"}, "headwater.task-run.123", False),
        ({RESOURCE_ID: ["sales", "headwater.deployment.*"]}, "sales", True),
        ({RESOURCE_ID: ["sales", "headwater.deployment.*"]}, "headwater.deployment.9", True),
        ({RESOURCE_ID: ["sales", "headwater.deployment.*"]}, "marketing", False),
        ({RESOURCE_ID: "sal?s"}, "sales", False),  # only `*` is special
        ({"team": "data*"}, "sales", False),  # a label the resource lacks never matches
    ],
)
def test_match_with_wildcards_and_lists(match: dict[str, Any], resource: str, hit: bool) -> None:
    trigger = EventTrigger(match=match)
    assert len(evaluate(trigger, TriggerState(), ev("anything", 0, resource))) == int(hit)


def test_match_all_labels_and_expect_wildcards() -> None:
    trigger = EventTrigger(match={RESOURCE_ID: "sales*", "team": "data"}, expect={"table.*", "*.refreshed"})
    state = TriggerState()
    assert len(evaluate(trigger, state, ev("table.loaded", 0, "sales.eu", team="data"))) == 1
    assert evaluate(trigger, state, ev("table.loaded", 0, "sales.eu", team="ops")) == []
    assert len(evaluate(trigger, state, ev("view.refreshed", 0, "sales.eu", team="data"))) == 1
    assert evaluate(trigger, state, ev("view.dropped", 0, "sales.eu", team="data")) == []


def test_match_related_needs_one_related_resource_matching_every_label() -> None:
    trigger = EventTrigger(match_related={RESOURCE_ID: "headwater.tag.*", "headwater.resource.role": "tag"})
    tag = {RESOURCE_ID: "headwater.tag.prod", "headwater.resource.role": "tag"}
    flow = {RESOURCE_ID: "headwater.flow.etl", "headwater.resource.role": "flow"}
    split = [{RESOURCE_ID: "headwater.tag.prod", "headwater.resource.role": "x"},
             {RESOURCE_ID: "y", "headwater.resource.role": "tag"}]  # fmt: skip
    assert len(evaluate(trigger, TriggerState(), ev("e", 0, related=[flow, tag]))) == 1
    assert evaluate(trigger, TriggerState(), ev("e", 0, related=[flow])) == []
    assert evaluate(trigger, TriggerState(), ev("e", 0, related=split)) == []
    assert evaluate(trigger, TriggerState(), ev("e", 0)) == []


def test_reactive_after_arms_the_bucket_first() -> None:
    trigger = EventTrigger(after={"deploy.started"}, expect={"deploy.failed"})
    state = TriggerState()
    assert evaluate(trigger, state, ev("deploy.failed", 0)) == []
    assert evaluate(trigger, state, ev("deploy.started", 1)) == []
    assert len(evaluate(trigger, state, ev("deploy.failed", 2))) == 1
    assert evaluate(trigger, state, ev("deploy.failed", 3)) == []  # disarmed by the firing


# -- proactive ---------------------------------------------------------------------------

SLA = EventTrigger(posture="Proactive", after={"day.started"}, expect={"sales.table.refreshed"},
                   match={RESOURCE_ID: "sales"}, within=100)  # fmt: skip


def test_proactive_fires_once_when_nothing_arrives_within() -> None:
    state = TriggerState()
    start = ev("day.started", 1000)
    assert evaluate(SLA, state, start) == []
    assert tick(SLA, state, 1050) == []
    assert tick(SLA, state, 1100) == []  # the window's end is still inside it
    [fired] = tick(SLA, state, 1100.5)
    assert (fired.window_start, fired.window_end, fired.events) == (1000, 1100, [])
    assert fired.opened_by == str(start.id)
    assert tick(SLA, state, 1200) == []
    assert tick(SLA, state, 5000) == []


def test_proactive_expected_event_inside_the_window_means_no_firing() -> None:
    state = TriggerState()
    feed(SLA, state, [ev("day.started", 1000), ev("sales.table.refreshed", 1099)])
    assert tick(SLA, state, 1200) == []
    assert state.buckets == {}  # nothing left to wait for


def test_proactive_late_event_after_the_firing_resolves_it_once() -> None:
    state = TriggerState()
    evaluate(SLA, state, ev("day.started", 1000))
    [fired] = tick(SLA, state, 1101)
    late = ev("sales.table.refreshed", 1150)
    [resolution] = evaluate(SLA, state, late)
    assert isinstance(resolution, Resolution)
    assert resolution.events == [str(late.id)]
    assert firing_key("auto-1", resolution) == firing_key("auto-1", fired)
    assert evaluate(SLA, state, ev("sales.table.refreshed", 1160)) == []


def test_proactive_late_event_before_any_tick_fires_then_resolves() -> None:
    state = TriggerState()
    evaluate(SLA, state, ev("day.started", 1000))
    out = evaluate(SLA, state, ev("sales.table.refreshed", 1150))
    assert [type(o) for o in out] == [Firing, Resolution]
    assert tick(SLA, state, 1200) == []


def test_proactive_threshold_counts_events_in_the_window_and_late_ones() -> None:
    trigger = SLA.model_copy(update={"threshold": 2})
    state = TriggerState()
    got = ev("sales.table.refreshed", 1010)
    feed(trigger, state, [ev("day.started", 1000), got])
    [fired] = tick(trigger, state, 1101)
    assert fired.events == [str(got.id)]
    assert "1 of 2" in fired.reason
    assert len(evaluate(trigger, state, ev("sales.table.refreshed", 1200))) == 1


def test_proactive_for_each_fires_per_resource() -> None:
    trigger = SLA.model_copy(update={"match": {}, "for_each": {RESOURCE_ID}})
    state = TriggerState()
    feed(trigger, state, [ev("day.started", 0, "a"), ev("day.started", 0, "b"), ev("sales.table.refreshed", 50, "b")])
    assert [f.bucket for f in tick(trigger, state, 101)] == ['{"headwater.resource.id":"a"}']


def test_proactive_without_after_expects_an_event_every_period() -> None:
    trigger = EventTrigger(posture="Proactive", expect={"heartbeat"}, within=10)
    state = TriggerState()
    assert tick(trigger, state, 0) == []  # opens [0, 10]
    assert evaluate(trigger, state, ev("heartbeat", 5)) == []
    assert tick(trigger, state, 10.5) == []  # [0, 10] met; [10, 20] opens
    [missed] = tick(trigger, state, 20.5)
    assert (missed.window_start, missed.window_end, missed.opened_by) == (10, 20, None)
    assert tick(trigger, state, 25) == []
    assert evaluate(trigger, state, ev("heartbeat", 26)) == [
        Resolution("{}", 10, 20, [str(ev("heartbeat", 26).id)], "1 expected event(s) arrived after the window")
    ]
    assert tick(trigger, state, 30.5) == []  # the late heartbeat also met [20, 30]
    [gap] = tick(trigger, state, 75)  # [30, 40] .. [60, 70] all missed while no tick ran: one firing
    assert (gap.window_start, gap.window_end) == (30, 70)
    assert "4 windows" in gap.reason
    [next_one] = tick(trigger, state, 80.5)
    assert (next_one.window_start, next_one.window_end) == (70, 80)


def test_proactive_needs_a_window() -> None:
    with pytest.raises(ValidationError):
        EventTrigger(posture="Proactive", expect={"x"})
    with pytest.raises(ValidationError):
        EventTrigger(threshold=0)


# -- state and keys ----------------------------------------------------------------------


def _mixed_stream() -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    for day in range(4):
        base = day * 1000.0
        steps.append(("event", ev("day.started", base, "sales")))
        steps.append(("event", ev("day.started", base, "hr")))
        if day % 2:
            steps.append(("event", ev("sales.table.refreshed", base + 50, "sales")))
        steps.append(("tick", base + 200))
        steps.append(("event", ev("sales.table.refreshed", base + 300, "hr")))
        steps.append(("event", ev("headwater.flow-run.Failed", base + 400, "run", n=day)))
    return steps


@pytest.mark.parametrize(
    "trigger",
    [
        SLA.model_copy(update={"match": {}, "for_each": {RESOURCE_ID}}),
        EventTrigger(posture="Proactive", expect={"sales.table.refreshed"}, within=150, for_each={RESOURCE_ID}),
        EventTrigger(expect={"*.refreshed", "headwater.*"}, threshold=2, within=1500, for_each={RESOURCE_ID}),
    ],
    ids=["proactive-after", "proactive-periodic", "reactive"],
)
def test_state_round_trips_through_json_mid_stream(trigger: EventTrigger) -> None:
    """A restart after any step (state written as JSON text and read back) changes nothing."""

    def run(restart: bool) -> tuple[list[Outcome], dict[str, Any]]:
        state, out = TriggerState(), []
        for kind, arg in _mixed_stream():
            if restart:
                state = TriggerState.from_json(json.loads(json.dumps(state.to_json())))
                trig = EventTrigger.from_dict(json.loads(json.dumps(trigger.to_dict())))
            else:
                trig = trigger
            out.extend(evaluate(trig, state, arg) if kind == "event" else tick(trig, state, arg))
        return out, state.to_json()

    steady, restarted = run(False), run(True)
    assert steady == restarted
    assert steady[0]  # the stream does make the trigger fire


def test_trigger_to_dict_is_stable_and_round_trips() -> None:
    a = EventTrigger(expect={"b", "a", "c"}, for_each={"y", "x"}, match={"k": ["v1", "v2"]})
    b = EventTrigger(expect={"c", "a", "b"}, for_each={"x", "y"}, match={"k": ["v1", "v2"]})
    assert a.to_dict() == b.to_dict()
    assert a.to_dict()["expect"] == ["a", "b", "c"]
    assert EventTrigger.from_dict(a.to_dict()) == a
    with pytest.raises(ValidationError):
        EventTrigger.from_dict({"expect": ["x"], "unknown": 1})


def test_state_from_another_version_is_refused() -> None:
    assert TriggerState.from_json(None) == TriggerState()
    with pytest.raises(ValueError, match="version"):
        TriggerState.from_json({"version": 99, "buckets": {}})


def test_firing_key_is_stable_and_distinct_per_window() -> None:
    trigger = EventTrigger(posture="Proactive", expect={"heartbeat"}, within=10)
    state = TriggerState()
    tick(trigger, state, 0)
    [one] = tick(trigger, state, 10.5)
    [two] = tick(trigger, state, 20.5)
    assert firing_key("auto", one) == firing_key("auto", Firing.from_dict(one.to_dict()))
    keys = {firing_key("auto", one), firing_key("auto", two), firing_key("other", one)}
    assert len(keys) == 3
    assert firing_key(UUID(int=5), one) == firing_key(str(UUID(int=5)), one)


def test_firing_key_tells_apart_reactive_firings_at_the_same_instant() -> None:
    trigger = EventTrigger(expect={"ping"})
    out = firings(feed(trigger, TriggerState(), [ev("ping", 1), ev("ping", 1, n=1)]))
    assert len({firing_key("a", f) for f in out}) == 2


# -- loop guard --------------------------------------------------------------------------

ACTIONS = {"headwater.automation.action.*"}


@pytest.mark.parametrize(
    ("expect", "loops"),
    [
        (set(), True),  # matches everything
        ({"*"}, True),
        ({"headwater.automation.*"}, True),
        ({"*.action.triggered"}, True),  # overlaps the actions' pattern
        ({"headwater.flow-run.Failed"}, False),
        ({"*.Failed"}, True),  # headwater.automation.action.Failed would match both
        ({"sales.*", "headwater.flow-run.*"}, False),
    ],
)
def test_loop_guard(expect: set[str], loops: bool) -> None:
    assert would_trigger_itself(EventTrigger(expect=expect), ACTIONS) is loops


def test_loop_guard_accepts_an_everything_trigger_whose_match_excludes_the_actions() -> None:
    trigger = EventTrigger(match={RESOURCE_ID: "headwater.flow-run.*"})
    own = [{RESOURCE_ID: "headwater.automation.42"}]
    assert would_trigger_itself(trigger, ACTIONS)
    assert not would_trigger_itself(trigger, ACTIONS, own)
    assert would_trigger_itself(EventTrigger(), ACTIONS, own)
