"""`headwater deployment schedule ...` as a user runs it: the real command in subprocesses, on
this test's HEADWATER_HOME (tests/conftest.py gives each test its own), against a deployment
made by `headwater deploy` with no pool (one a `serve` process would run)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from headwater.api.schedules import CATCHUP_POLICIES, OVERLAP_POLICIES
from headwater.cli import _schedules
from tests.cli.helpers import HEADWATER, cli

FLOW_FILE = textwrap.dedent(
    """
    from headwater import flow

    @flow
    def add(a: int = 1) -> int:
        return a
    """
)
DEP = "add/d"


def _json(*argv: str, cwd: Path | None = None) -> Any:
    done = subprocess.run([*HEADWATER, *argv, "--json"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _schedule(*argv: str) -> Any:
    return _json("deployment", "schedule", *argv)


@pytest.fixture(autouse=True)
def deployed(tmp_path: Path) -> str:
    (tmp_path / "flows.py").write_text(FLOW_FILE)
    assert _json("deploy", "flows.py:add", "--name", "d", cwd=tmp_path)["name"] == DEP
    return DEP


def test_the_policy_choices_are_the_models() -> None:
    """The CLI restates them so registering loads no croniter; they must not drift."""
    assert _schedules.OVERLAP == OVERLAP_POLICIES and _schedules.CATCHUP == CATCHUP_POLICIES


def test_create_ls_pause_resume_delete() -> None:
    cron = _schedule("create", DEP, "--cron", "0 9 * * 1-5", "--timezone", "Europe/Berlin", "--slug", "weekdays",
                     "--param", "a=3", "--overlap", "buffer_one", "--catchup", "all", "--max-lateness", "1h")
    assert cron == {**cron, "kind": "cron", "timezone": "Europe/Berlin", "slug": "weekdays", "active": True,
                    "parameters": {"a": 3}, "overlap": "buffer_one", "catchup": "all", "max_lateness": 3600.0}
    assert len(cron["next_ticks"]) == 3
    first = cron["next_ticks"][0]
    assert first["local"][11:16] == "09:00" and first["local"][-6:] in ("+01:00", "+02:00")
    every = _schedule("create", DEP, "--interval", "15m")
    assert every["kind"] == "interval" and every["spec"]["interval"] == 900.0 and every["timezone"] == "UTC"
    # Defaults as the model's; the next tick is on a quarter hour.
    assert (every["overlap"], every["catchup"], every["max_lateness"]) == ("skip", "latest", None)
    assert every["next"][14:16] in ("00", "15", "30", "45")

    listed = _schedule("ls", DEP)
    assert [(s["id"], s["kind"], s["overlap"], s["catchup"]) for s in listed] == [
        (cron["id"], "cron", "buffer_one", "all"), (every["id"], "interval", "skip", "latest")]
    assert all(s["next"] for s in listed)
    text = cli("deployment", "schedule", "ls", DEP)
    assert text.returncode == 0 and "0 9 * * 1-5" in text.stdout and "every 15m" in text.stdout

    assert _schedule("pause", DEP, str(every["id"]))["active"] is False
    paused = {s["id"]: s for s in _schedule("ls", DEP)}[every["id"]]
    assert paused["active"] is False and paused["next"] is None  # a paused schedule makes no runs
    assert _schedule("resume", DEP, str(every["id"]))["active"] is True
    assert {s["id"]: s["active"] for s in _schedule("ls", DEP)}[every["id"]] is True

    stranger = cli("deployment", "schedule", "pause", DEP, "999")
    assert stranger.returncode == 1
    assert f"has no live schedule 999; its schedules: {cron['id']}, {every['id']}" in stranger.stderr
    deleted = _schedule("delete", DEP, str(every["id"]))
    assert deleted == {**deleted, "deleted": every["id"], "deployment": DEP}
    # The scheduler makes runs a minute ahead, so a tick may be waiting: however many, each ended so.
    superseded = [r for r in _json("runs", "ls", "--state", "CANCELLED") if r["state_name"] == "Superseded"]
    assert deleted["superseded_runs"] == len(superseded)
    assert [s["id"] for s in _schedule("ls", DEP)] == [cron["id"]]
    again = cli("deployment", "schedule", "delete", DEP, str(every["id"]))
    assert again.returncode == 1 and "has no live schedule" in again.stderr


@pytest.mark.parametrize(("flags", "named"), [
    (("--cron", "61 * * * *"), "cron '61 * * * *' is not a valid cron expression"),
    (("--cron", "0 9 * * *", "--timezone", "Mars/Olympus"), "timezone 'Mars/Olympus' is not a known IANA time zone"),
    (("--interval", "soon"), "interval 'soon' is not understood"),
], ids=["cron", "timezone", "interval"])
def test_a_bad_schedule_is_refused_naming_it(flags: tuple[str, ...], named: str) -> None:
    done = cli("deployment", "schedule", "create", DEP, *flags)
    assert done.returncode == 1 and done.stderr.startswith("headwater deployment: ") and named in done.stderr
    assert "Traceback" not in done.stderr
    assert _schedule("ls", DEP) == []


def test_exactly_one_of_cron_interval_rrule() -> None:
    both = cli("deployment", "schedule", "create", DEP, "--cron", "0 9 * * *", "--interval", "15m")
    neither = cli("deployment", "schedule", "create", DEP)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    assert neither.returncode == 2 and "one of the arguments --cron --interval --rrule is required" in neither.stderr


def test_preview_over_dst_changes_one_tick_a_day() -> None:
    """02:30 does not exist on the spring-forward day and occurs twice on the fall-back day:
    either way the schedule runs once that day, and the tick after the change is marked."""
    made = _schedule("create", DEP, "--cron", "30 2 * * *", "--timezone", "Europe/Berlin")
    shown = _schedule("preview", DEP, "--count", "400")
    assert len(shown) == 400 and {t["schedule_id"] for t in shown} == {made["id"]}
    days = Counter(t["local"][:10] for t in shown)
    assert max(days.values()) == 1, [d for d, n in days.items() if n > 1]
    marked = [t for t in shown if t["dst_change"]]
    assert {("forward" in t["dst_change"]) for t in marked} == {True, False}  # one each way in 400 days
    spring = next(t for t in marked if "forward" in t["dst_change"])
    assert spring["local"][11:] == "03:00:00+02:00"  # the instant the clocks jump

    text = cli("deployment", "schedule", "preview", DEP, "--id", str(made["id"]), "--count", "400")
    assert text.returncode == 0 and "CEST (+02:00)" in text.stdout and "CET (+01:00)" in text.stdout
    assert "* clocks go forward 1h before this tick (CET -> CEST)" in text.stdout
