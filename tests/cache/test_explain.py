"""`explain`: what the cache did for a run, and for a miss, which components changed since the
entry the user expected to hit. Pure: built from notes and entries, no store."""

from __future__ import annotations

import json

import pytest

from headwater.cache.entries import Entry, RunNote
from headwater.cache.explain import explain, render

NOW = 1_800_000_000.0
RUN = "5c1d0a3e-0000-4000-8000-000000000001"
SOURCE = {"task source": "aa11", "argument 'x'": "bb22", "argument 'y'": "cc33"}


def _note(outcome: str, components: dict[str, str] | None = None, key: str | None = "k-now", reason: str = "") -> RunNote:
    return RunNote(RUN, "load", key, SOURCE if components is None else components, outcome, reason, NOW)


def _entry(key: str, components: dict[str, str], created: float = NOW - 60, task: str = "load") -> Entry:
    return Entry(key, task, 10, created, None, components)


def test_a_miss_names_the_components_that_changed_since_the_nearest_entry() -> None:
    yesterday = _entry("k-old", {**SOURCE, "argument 'x'": "0ld"}, created=NOW - 86400)
    far = _entry("k-far", {"task source": "ffff", "argument 'x'": "eeee", "argument 'y'": "dddd"})
    current = _entry("k-now", SOURCE, created=NOW)
    other_task = _entry("k-other", SOURCE, task="train")
    result = explain(RUN, _note("miss"), current, [yesterday, far, current, other_task])
    assert result["outcome"] == "miss" and result["key"] == "k-now"
    assert result["entry"] == {"key": "k-now", "created": NOW, "expires": None, "size": 10}
    nearest = result["nearest"]
    assert (nearest["key"], nearest["common"], nearest["differs"]) == ("k-old", 2, ["argument 'x'"])
    assert nearest["changes"] == {"argument 'x'": ["bb22", "0ld"]}
    assert "differs in: argument 'x'." in result["summary"]
    json.dumps(result)  # --json prints it as is


def test_components_present_on_one_side_only_differ_too() -> None:
    before = _entry("k-old", {"task source": "aa11", "argument 'x'": "bb22", "flow parameters": "9"})
    result = explain(RUN, _note("miss"), None, [before])
    assert result["nearest"]["differs"] == ["argument 'y'", "flow parameters"]
    assert result["nearest"]["changes"]["flow parameters"] == [None, "9"]
    assert result["entry"] is None
    text = render(result)
    assert "differs:  argument 'y'     this run cc33, entry (absent)" in text
    assert "entry now:  none under this key" in text


def test_of_equally_near_entries_the_newest_is_compared() -> None:
    older = _entry("k-1", {**SOURCE, "argument 'y'": "1"}, created=NOW - 100)
    newer = _entry("k-2", {**SOURCE, "argument 'x'": "2"}, created=NOW - 10)
    assert explain(RUN, _note("miss"), None, [older, newer])["nearest"]["key"] == "k-2"


def test_a_miss_with_nothing_to_compare_says_so() -> None:
    result = explain(RUN, _note("miss"), None, [])
    assert result["nearest"] is None
    assert "No other entry of 'load'" in result["summary"]


def test_a_miss_against_identical_components_points_at_what_they_do_not_show() -> None:
    result = explain(RUN, _note("miss"), None, [_entry("k-salted", dict(SOURCE))])
    assert result["nearest"]["differs"] == []
    assert "something the components do not show" in result["summary"]


@pytest.mark.parametrize(
    ("outcome", "reason", "expected"),
    [
        ("hit", "", "was served from the cache (a hit)"),
        ("refresh", "", "refresh_cache=True"),
        ("uncacheable", "argument 'lock': a _thread.lock cannot be hashed", "no cache key (argument 'lock'"),
        ("unstored", "the value does not pickle", "was not stored: the value does not pickle"),
        ("evicted-later", "", "the cache recorded 'evicted-later'"),
    ],
)
def test_every_outcome_is_told(outcome: str, reason: str, expected: str) -> None:
    key = None if outcome == "uncacheable" else "k-now"
    result = explain(RUN, _note(outcome, key=key, reason=reason), None, [_entry("k-old", SOURCE)])
    assert expected in result["summary"]
    assert (result["nearest"] is not None) == (outcome == "unstored")
    assert render(result).startswith(result["summary"])


def test_a_run_without_a_note_says_why_there_may_be_none() -> None:
    result = explain(RUN, None, None, [])
    assert result == {
        "run_id": RUN, "recorded": False,
        "summary": f"run {RUN} has no cache record: its task has no cache policy, or the run is older than 30 days",
    }
    assert render(result) == result["summary"]


def test_the_text_shows_the_key_its_components_and_the_entry_now() -> None:
    current = Entry("k-now", "load", 1234, NOW, NOW + 3600, SOURCE)
    text = render(explain(RUN, _note("hit"), current, [current]))
    assert "key:        k-now" in text
    assert "  argument 'x'  bb22" in text
    assert "entry now:  created 2027-01-15 08:00:00 UTC, expires 2027-01-15 09:00:00 UTC, 1234 bytes" in text
