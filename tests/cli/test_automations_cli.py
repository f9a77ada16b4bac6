"""`headwater automation ...`: the real command in subprocesses, on this test's home."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .helpers import HEADWATER

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


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HEADWATER, *argv], capture_output=True, text=True, timeout=60, env=dict(os.environ))


def _json(*argv: str) -> Any:
    done = _run(*argv, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_automations_are_created_from_yaml_listed_paused_and_deleted(tmp_path: Path) -> None:
    spec = tmp_path / "automation.yaml"
    spec.write_text(FILE)
    made = _json("automation", "create", "-f", str(spec))
    assert made[0]["name"] == "note-refreshes" and made[0]["trigger"]["threshold"] == 2
    assert [a["name"] for a in _json("automation", "ls")] == ["note-refreshes"]
    assert _json("automation", "pause", "note-refreshes")["enabled"] is False
    assert _json("automation", "resume", "note-refreshes")["enabled"] is True
    shown = _json("automation", "inspect", "note-refreshes")
    assert shown["actions"] == [{"type": "do-nothing"}] and shown["firings"] == []
    again = _run("automation", "create", "-f", str(spec))
    assert again.returncode == 1 and "exists already" in again.stderr
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: loop\ntrigger: {}\nactions: [{type: do-nothing}]\n")
    refused = _run("automation", "create", "-f", str(loop))
    assert refused.returncode == 1 and "fire itself forever" in refused.stderr
    assert _json("automation", "delete", "note-refreshes")["deleted"] == "note-refreshes"
    missing = _run("automation", "inspect", "note-refreshes")
    assert missing.returncode == 1 and "no automation 'note-refreshes'" in missing.stderr
