"""`headwater deploy`, `deployment`, `work-pool` and `worker` as a user runs them: the real
command in subprocesses, on this test's HEADWATER_HOME (the embedded default, so every
command starts its own state service on the shared database), ending with a worker process
that runs a deployment's flow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import HEADWATER, cli

FLOW_FILE = textwrap.dedent(
    """
    from headwater import flow

    @flow
    def add(a: int, b: int = 1) -> int:
        return a + b
    """
)


def _json(*argv: str, cwd: Path | None = None) -> Any:
    done = subprocess.run([*HEADWATER, *argv, "--json"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def deployed(tmp_path: Path) -> str:
    """`add/nightly`, deployed from a flow file in tmp_path to the work pool `etl`."""
    (tmp_path / "flows.py").write_text(FLOW_FILE)
    _json("work-pool", "create", "etl")
    made = _json("deploy", "flows.py:add", "--name", "nightly", "--pool", "etl", "--tag", "sums", cwd=tmp_path)
    assert made["name"] == "add/nightly"
    return "add/nightly"


def test_work_pool_verbs() -> None:
    made = _json("work-pool", "create", "etl", "--concurrency-limit", "3", "--description", "nightly jobs")
    assert made == {**made, "name": "etl", "concurrency_limit": 3, "paused": False, "description": "nightly jobs"}
    again = cli("work-pool", "create", "etl")
    assert again.returncode == 1 and "'etl' exists already" in again.stderr
    assert [p["name"] for p in _json("work-pool", "ls")] == ["etl"]
    assert _json("work-pool", "inspect", "etl")["concurrency_limit"] == 3
    assert _json("work-pool", "pause", "etl")["paused"] is True
    assert _json("work-pool", "resume", "etl")["paused"] is False
    assert _json("work-pool", "set-limit", "etl", "5")["concurrency_limit"] == 5
    assert _json("work-pool", "set-limit", "etl", "none")["concurrency_limit"] is None
    assert _json("work-pool", "delete", "etl") == {"deleted": "etl"}
    gone = cli("work-pool", "inspect", "etl")
    assert gone.returncode == 1 and "etl" in gone.stderr


def test_deploy_then_list_inspect_and_run(deployed: str, tmp_path: Path) -> None:
    listed = _json("deployment", "ls", "--pool", "etl")
    assert [d["name"] for d in listed] == [deployed]
    shown = _json("deployment", "inspect", deployed)
    assert shown["entrypoint"] == "flows.py:add" and shown["work_pool"] == "etl"
    assert shown["source"] == {"kind": "local", "path": str(tmp_path.resolve())}
    assert shown["parameter_names"] == ["a", "b"] and shown["tags"] == ["sums"]
    assert shown["parameter_schema"]["required"] == ["a"]

    bad = cli("deployment", "run", deployed, "-p", "a=oops")
    assert bad.returncode == 1 and "parameter 'a'" in bad.stderr
    malformed = cli("deployment", "run", deployed, "-p", "a")
    assert malformed.returncode == 2 and "k=v" in malformed.stderr

    run = _json("deployment", "run", deployed, "-p", "a=2")
    assert run["state_type"] == "SCHEDULED" and run["parameters"] == {"a": 2} and run["id"]

    assert _json("deployment", "pause", deployed)["paused"] is True
    assert _json("deployment", "resume", deployed)["paused"] is False
    deleted = _json("deployment", "delete", deployed)
    assert deleted["cancelled_runs"] == [run["id"]]
    assert cli("deployment", "inspect", deployed).returncode == 1


def test_a_worker_process_runs_a_deployment(deployed: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([*HEADWATER, "worker", "start", "--pool", "etl", "--name", "w1"],
                                  stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        done = cli("deployment", "run", deployed, "-p", "a=2", "--watch", "--timeout", "60", timeout=90)
        assert done.returncode == 0, (done.stdout, done.stderr, log.read_text())
        assert "COMPLETED" in done.stdout
        (shown,) = _json("worker", "ls")
        assert shown == {**shown, "name": "w1", "pool": "etl", "status": "online", "pid": worker.pid}
        assert "worker w1 is waiting for runs of work pool 'etl'" in log.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0, log.read_text()
    assert _json("worker", "ls")[0]["status"] == "stopped"
