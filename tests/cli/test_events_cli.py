"""`headwater events ...`: the real command in subprocesses, on this test's home."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

from .helpers import HEADWATER


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HEADWATER, *argv], capture_output=True, text=True, timeout=60, env=dict(os.environ))


def _json(*argv: str) -> Any:
    done = _run(*argv, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_script_reports_an_event_and_it_is_listed_and_streamed() -> None:
    follower = subprocess.Popen([*HEADWATER, "events", "stream", "--name", "dag.*", "--json"], stdout=subprocess.PIPE,
                                text=True, env=dict(os.environ))  # fmt: skip
    try:
        time.sleep(2.0)  # its stream is up
        made = _json("events", "emit", "dag.completed", "--resource", "id=airflow.dag.sales", "--resource", "team=finance",
                     "--payload", '{"rows": 1200}', "--related", "warehouse.sales")  # fmt: skip
        assert made["resource"] == {"headwater.resource.id": "airflow.dag.sales", "team": "finance"}
        listed = _json("events", "ls", "--name", "dag.*", "--since", "5m")
        assert [e["event"] for e in listed] == ["dag.completed"] and listed[0]["payload"] == {"rows": 1200}
        assert follower.stdout is not None
        streamed = json.loads(follower.stdout.readline())
        assert streamed["event"] == "dag.completed" and streamed["id"] == made["id"]
    finally:
        follower.terminate()
        follower.wait(10)
    refused = _run("events", "emit", "x", "--resource", "name=no-id")
    assert refused.returncode == 1 and "headwater.resource.id" in refused.stderr
    bad_span = _run("events", "ls", "--since", "yesterday")
    assert bad_span.returncode == 1 and "30s, 15m, 1h, 2d" in bad_span.stderr
