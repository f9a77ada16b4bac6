"""`headwater block ...`: the real command in subprocesses, on this test's home, with a
secret key of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import HEADWATER, cli, cli_json

SAVE = """
from headwater.blocks import Secret, SlackWebhook
Secret(value="hunter2-the-password").save("db-password")
SlackWebhook(url="https://hooks.example/T000/B000/secret-path").save("alerts")
"""


@pytest.fixture(autouse=True)
def _key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("HEADWATER_SECRET_KEY", raising=False)
    done = subprocess.run([sys.executable, "-c", SAVE], capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert done.returncode == 0, done.stderr


def test_listings_never_show_a_secret() -> None:
    listed = cli_json("block", "ls")
    assert {f"{b['type']}/{b['name']}" for b in listed} == {"secret/db-password", "slack-webhook/alerts"}
    shown = cli_json("block", "inspect", "secret/db-password")
    assert shown["data"]["value"] == "********"
    for argv in (("block", "ls"), ("block", "inspect", "slack-webhook/alerts"), ("block", "types")):
        out = cli(*argv).stdout + json.dumps(cli_json(*argv))
        assert "hunter2" not in out and "secret-path" not in out
    types = {t["slug"]: t["fields"] for t in cli_json("block", "types")}
    assert types["secret"]["value"] == "secret"


def test_update_rotates_a_secret_for_every_later_load() -> None:
    assert cli_json("block", "update", "secret/db-password", "--set", "value=rotated-pass")["fields"] == ["value"]
    read = subprocess.run(
        [sys.executable, "-c", "from headwater.blocks import Secret; print(Secret.load('db-password').get())"],
        capture_output=True, text=True, env=dict(os.environ), timeout=60,
    )  # fmt: skip
    assert read.stdout.strip() == "rotated-pass", read.stderr
    bad = cli("block", "update", "secret/db-password", "--set", "nope=1")
    assert bad.returncode == 1 and "has no field nope" in bad.stderr


def test_check_passes_then_reports_a_document_no_class_fits(tmp_path: Path) -> None:
    assert cli("block", "check").returncode == 0
    module = tmp_path / "mytypes.py"
    module.write_text("from headwater.blocks import Block\n\nclass Warehouse(Block):\n    dsn: str\n")
    saved = subprocess.run([sys.executable, "-c", "from mytypes import Warehouse; Warehouse(dsn='x').save('main')"],
                           cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ), timeout=60)  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    module.write_text("from headwater.blocks import Block\n\nclass Warehouse(Block):\n    dsn: str\n    schema_name: str\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    checked = subprocess.run([*HEADWATER, "block", "check", "--module", "mytypes"], capture_output=True, text=True,
                             env=env, timeout=60)  # fmt: skip
    assert checked.returncode == 1 and "warehouse/main" in checked.stdout and "schema_name" in checked.stdout
    unknown = cli("block", "check")
    assert unknown.returncode == 1 and "no class for block type 'warehouse'" in unknown.stdout
    assert cli_json("block", "delete", "warehouse/main")["deleted"] == "warehouse/main"
