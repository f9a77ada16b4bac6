"""`headwater events ...`: the real command in subprocesses, on this test's home."""

from __future__ import annotations

import json
import os
import subprocess
import time

from .helpers import HEADWATER, cli, cli_json


def test_a_script_reports_an_event_and_it_is_listed_and_streamed() -> None:
    follower = subprocess.Popen([*HEADWATER, "events", "stream", "--name", "dag.*", "--json"], stdout=subprocess.PIPE,
                                text=True, env=dict(os.environ))  # fmt: skip
    try:
        time.sleep(2.0)  # its stream is up
        made = cli_json("events", "emit", "dag.completed", "--resource", "id=airflow.dag.sales", "--resource", "team=finance",
                     "--payload", '{"rows": 1200}', "--related", "warehouse.sales")  # fmt: skip
        assert made["resource"] == {"headwater.resource.id": "airflow.dag.sales", "team": "finance"}
        listed = cli_json("events", "ls", "--name", "dag.*", "--since", "5m")
        assert [e["event"] for e in listed] == ["dag.completed"] and listed[0]["payload"] == {"rows": 1200}
        assert follower.stdout is not None
        streamed = json.loads(follower.stdout.readline())
        assert streamed["event"] == "dag.completed" and streamed["id"] == made["id"]
    finally:
        follower.terminate()
        follower.wait(10)
    refused = cli("events", "emit", "x", "--resource", "name=no-id")
    assert refused.returncode == 1 and "headwater.resource.id" in refused.stderr
    bad_span = cli("events", "ls", "--since", "yesterday")
    assert bad_span.returncode == 1 and "30s, 15m, 1h, 2d" in bad_span.stderr
