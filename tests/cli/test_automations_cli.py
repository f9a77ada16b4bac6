"""`headwater automation ...`: the real command in subprocesses, on this test's home."""

from __future__ import annotations

from pathlib import Path

from .helpers import cli, cli_json

FILE = """
name: note-refreshes
description: do nothing, but count
trigger:
  expect: [sales.table.refreshed]
  match: {headwater.resource.id: "warehouse.*"}
  threshold: 2
  within: 60
actions:
  - type: do-nothing
"""


def test_automations_are_created_from_yaml_listed_paused_and_deleted(tmp_path: Path) -> None:
    spec = tmp_path / "automation.yaml"
    spec.write_text(FILE)
    made = cli_json("automation", "create", "-f", str(spec))
    assert made[0]["name"] == "note-refreshes" and made[0]["trigger"]["threshold"] == 2
    assert [a["name"] for a in cli_json("automation", "ls")] == ["note-refreshes"]
    assert cli_json("automation", "pause", "note-refreshes")["enabled"] is False
    assert cli_json("automation", "resume", "note-refreshes")["enabled"] is True
    shown = cli_json("automation", "inspect", "note-refreshes")
    assert shown["actions"] == [{"type": "do-nothing"}] and shown["firings"] == []
    again = cli("automation", "create", "-f", str(spec))
    assert again.returncode == 1 and "exists already" in again.stderr
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: loop\ntrigger: {}\nactions: [{type: do-nothing}]\n")
    refused = cli("automation", "create", "-f", str(loop))
    assert refused.returncode == 1 and "fire itself forever" in refused.stderr
    assert cli_json("automation", "delete", "note-refreshes")["deleted"] == "note-refreshes"
    missing = cli("automation", "inspect", "note-refreshes")
    assert missing.returncode == 1 and "no automation 'note-refreshes'" in missing.stderr


def test_a_dry_run_from_the_cli_creates_nothing(tmp_path: Path) -> None:
    for _ in range(4):
        cli_json("events", "emit", "sales.table.refreshed", "--resource", "id=warehouse.sales")
    spec = tmp_path / "automation.yaml"
    spec.write_text(FILE)
    report = cli_json("automation", "create", "-f", str(spec), "--dry-run", "--hours", "1")
    assert report["name"] == "note-refreshes" and report["events_read"] >= 4
    assert [o["kind"] for o in report["outcomes"]] == ["firing", "firing"]  # threshold 2, four events
    assert cli_json("automation", "ls") == []


def test_explain_says_why_it_did_not_fire_yet(tmp_path: Path) -> None:
    spec = tmp_path / "automation.yaml"
    spec.write_text(FILE)
    cli_json("automation", "create", "-f", str(spec))
    explained = cli("automation", "explain", "note-refreshes")
    assert explained.returncode == 0 and "no open window" in explained.stdout
