"""`headwater runs ls/show/watch` against a real database, directly and through a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from uuid import uuid4

import pytest

from headwater.api import FlowRunRecord, StateClient, StateServer, TaskRunRecord
from headwater.cli import main
from tests.api.helpers import flow, state
from tests.cli.helpers import HEADWATER, TOKEN, cli, in_terminal


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_runs_ls_json_reads_the_database_directly(recorded, capsys) -> None:  # type: ignore[no-untyped-def]
    _, ids = recorded
    runs = _json(capsys, "runs", "ls", "--json")
    assert isinstance(runs, list) and len(runs) == 2
    by_id = {r["id"]: r for r in runs}
    parent, child = by_id[str(ids["parent"])], by_id[str(ids["child"])]
    for key in ("id", "name", "flow_name", "state_type", "state_name", "parent_id", "start_time", "end_time", "task_run_count"):
        assert key in parent
    assert (parent["state_type"], parent["task_run_count"], parent["parent_id"]) == ("COMPLETED", 2, None)
    assert child["parent_id"] == str(ids["parent"]) and child["state_name"] == "Failed"
    assert parent["start_time"].endswith("+00:00")
    assert (parent["host"], parent["pid"], child["host"], child["pid"]) == ("flow-host", 101, None, None)
    assert [r["id"] for r in _json(capsys, "runs", "ls", "--json", "--state", "failed")] == [str(ids["child"])]
    assert [r["id"] for r in _json(capsys, "runs", "ls", "--json", "--flow", "etl")] == [str(ids["parent"])]


def test_runs_show_json_accepts_a_prefix(recorded, capsys) -> None:  # type: ignore[no-untyped-def]
    _, ids = recorded
    detail = _json(capsys, "runs", "show", str(ids["parent"])[:8], "--json")
    assert isinstance(detail, dict)
    assert detail["id"] == str(ids["parent"])
    assert [s["type"] for s in detail["states"]] == ["RUNNING", "COMPLETED"]
    assert [(c["id"], c["name"], c["flow_name"], c["parent_task_run_id"]) for c in detail["children"]] == [
        (str(ids["child"]), "report-run", "report", str(ids["total"]))]
    load, total = detail["task_runs"]
    assert (load["task_name"], load["state_type"], [s["name"] for s in load["states"]]) == (
        "load", "COMPLETED", ["Pending", "Running", "Completed"])
    assert total["upstream"] == [str(ids["load"])]
    assert (load["host"], load["pid"], total["host"], total["pid"]) == ("worker-host", 202, None, None)
    child = _json(capsys, "runs", "show", str(ids["child"]), "--json")
    assert child["states"][-1]["message"] == "boom"  # type: ignore[index]


def test_a_task_run_is_shown_and_found_by_its_last_digits(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Task run ids start with the millisecond they were made (`runtime/runs.py`): the tasks
    # of one flow share their first digits, so the CLI shows and takes their last ones.
    from headwater import flow, task
    from headwater.api import reset_recorder

    @task
    def step(i: int) -> int:
        return i

    @flow
    def several() -> list[int]:
        return [step(i) for i in range(5)]

    reset_recorder()
    several()
    reset_recorder()
    monkeypatch.setenv("COLUMNS", "200")
    [run] = _json(capsys, "runs", "ls", "--json")  # type: ignore[misc]
    tasks = _json(capsys, "runs", "show", run["id"], "--json")["task_runs"]  # type: ignore[index]
    assert len(tasks) == 5
    assert main(["runs", "show", run["id"]]) == 0
    out = capsys.readouterr().out
    for t in tasks:
        assert t["id"][-8:] in out
        assert _json(capsys, "runs", "show", t["id"][-8:], "--json")["id"] == t["id"]  # type: ignore[index]


def test_runs_through_the_server_url(recorded, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    srv, ids = recorded
    monkeypatch.setenv("HEADWATER_API_URL", srv.url)
    monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
    monkeypatch.setenv("HEADWATER_HOME", "/nonexistent")  # proves it did not read the file
    assert len(_json(capsys, "runs", "ls", "--json")) == 2  # type: ignore[arg-type]
    assert _json(capsys, "runs", "show", str(ids["child"]), "--json")["parent_id"] == str(ids["parent"])  # type: ignore[index]


def test_human_output_and_watch(recorded, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, ids = recorded
    monkeypatch.setenv("COLUMNS", "200")  # every cell on one line
    assert main(["runs", "ls"]) == 0
    out = capsys.readouterr().out
    assert "etl" in out and "flow-host (101)" in out
    assert main(["runs", "show", str(ids["parent"])]) == 0
    out = capsys.readouterr().out
    assert "state timeline" in out and "load-0" in out and "worker-host (202)" in out
    assert main(["runs", "watch", "--iterations", "2", "--interval", "0.05"]) == 0
    assert "report" in capsys.readouterr().out


def test_unknown_id_is_an_error(recorded, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["runs", "show", "ffffffff"]) == 1
    assert "no flow run or task run with id 'ffffffff'" in capsys.readouterr().err


def test_show_names_a_flow_runs_subflows_parent_and_upstreams(recorded) -> None:  # type: ignore[no-untyped-def]
    _, ids = recorded
    done = cli("runs", "show", str(ids["parent"]))
    assert done.returncode == 0, done.stderr
    subflows = done.stdout[done.stdout.index("subflows (1)"):]
    assert "report-run" in subflows and "total-0" in subflows and str(ids["child"])[:8] in subflows
    assert f"load-0 ({str(ids['load'])[:8]})" in done.stdout  # total's upstream, by name
    assert "parent: -" in done.stdout
    child = cli("runs", "show", str(ids["child"])).stdout
    assert f"parent: etl-run ({str(ids['parent'])[:8]})" in child


@pytest.mark.parametrize("through", ["database", "server"])
def test_show_a_task_run(through: str, recorded) -> None:  # type: ignore[no-untyped-def]
    """Its states, its flow run by name and id, its upstream and downstream task runs and the
    subflow it started, all by name."""
    srv, ids = recorded
    env = {"HEADWATER_API_URL": srv.url, "HEADWATER_API_TOKEN": TOKEN} if through == "server" else {}
    total = json.loads(cli("runs", "show", str(ids["total"])[:8], "--json", env=env).stdout)
    assert (total["kind"], total["id"], total["name"], total["task_name"]) == ("task", str(ids["total"]), "total-0", "total")
    assert [s["type"] for s in total["states"]] == ["PENDING", "RUNNING", "COMPLETED"]
    assert (total["flow_run"]["id"], total["flow_run"]["name"], total["flow_run"]["flow_name"]) == (
        str(ids["parent"]), "etl-run", "etl")
    assert [(r["id"], r["name"]) for r in total["upstream_runs"]] == [(str(ids["load"]), "load-0")]
    assert total["upstream_by_parameter"] == {"rows": [str(ids["load"])]}
    assert [(r["id"], r["name"]) for r in total["subflows"]] == [(str(ids["child"]), "report-run")]
    load = json.loads(cli("runs", "show", str(ids["load"]), "--json", env=env).stdout)
    assert [(r["id"], r["name"]) for r in load["downstream_runs"]] == [(str(ids["total"]), "total-0")]
    assert (load["host"], load["pid"]) == ("worker-host", 202)
    out = cli("runs", "show", str(ids["total"]), env=env).stdout
    assert f"flow run: etl-run ({ids['parent']}) of flow etl" in out
    assert f"upstream: load-0 ({str(ids['load'])[:8]})" in out and "rows <- load-0" in out
    assert "state timeline" in out and "report-run" in out


def test_cli_in_a_fresh_process(recorded) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run([sys.executable, "-m", "headwater.cli", "runs", "ls", "--json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert len(json.loads(out)) == 2


EVIL = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred[bold]x[/]\u202eevil\r"


def test_escape_sequences_in_run_names_reach_the_terminal_inert(tmp_path: Path) -> None:
    """A run's name, its flow's name, its host, a state's name and message are anyone's text: shown
    as text, with control characters escaped, never as terminal escapes or rich markup."""
    home = tmp_path / "home"
    srv = StateServer(home, port=0, token=TOKEN, synchronous="NORMAL")
    srv.start()
    try:
        with StateClient(srv.url, token=TOKEN) as c:
            run = FlowRunRecord(uuid4(), f"run{EVIL}", f"flow{EVIL}", {}, created=time.time(),
                                host=f"host{EVIL}", pid=1)
            c.create_flow_run(run)
            c.set_state(state(run.id, "RUNNING", name=f"Running{EVIL}", message=f"note{EVIL}"))
            t = TaskRunRecord(uuid4(), run.id, f"task{EVIL}", "t", created=time.time())
            c.create_task_run(t)
            c.set_state(state(t.id, "RUNNING", "task"))
    finally:
        srv.stop(0.5)
    env = {**os.environ, "HEADWATER_HOME": str(home), "COLUMNS": "400", "TERM": "xterm-256color"}
    env.pop("HEADWATER_API_URL", None)
    for verb in (["show", str(run.id)], ["show", str(t.id)], ["ls"], ["watch", "--once"]):
        out = subprocess.run([sys.executable, "-m", "headwater.cli", "runs", *verb],
                             capture_output=True, text=True, env=env, timeout=60, check=True).stdout
        assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out, verb
        assert r"\x1b]0;pwned\x07" in out and r"\u202eevil" in out, (verb, out)
        assert "red[bold]x[/]" in out, verb  # markup shown, not applied


def test_watch_without_a_terminal_prints_a_line_per_change_as_it_happens(recorded) -> None:  # type: ignore[no-untyped-def]
    srv, ids = recorded
    proc = subprocess.Popen([*HEADWATER, "runs", "watch", "--interval", "0.1", "--iterations", "100"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        at, *parent = proc.stdout.readline().split()
        assert parent == ["etl", "etl-run", str(ids["parent"]), "COMPLETED"]
        assert datetime.fromisoformat(at).tzinfo is not None
        assert proc.stdout.readline().split()[1:] == ["report", "report-run", str(ids["child"]), "FAILED"]
        with StateClient(srv.url, token=TOKEN) as c:
            late = flow("late")
            c.create_flow_run(late)
            c.set_state(state(late.id, "PENDING", name="AwaitingConcurrencySlot"))
            seen = [proc.stdout.readline().split()[1:]]
            if seen[0][-1] == "-":  # looked between the run's creation and its first state
                seen.append(proc.stdout.readline().split()[1:])
            assert seen[-1] == ["late", "late-run", str(late.id), "PENDING", "AwaitingConcurrencySlot"]
            assert proc.poll() is None  # printed while it watches, not when it ends
            c.set_state(state(late.id, "RUNNING"))
            assert proc.stdout.readline().split()[1:] == ["late", "late-run", str(late.id), "RUNNING"]
    finally:
        proc.kill()
        proc.wait()


def test_watch_on_a_terminal_is_a_live_table(recorded) -> None:  # type: ignore[no-untyped-def]
    out = in_terminal("runs", "watch", "--once", columns=120)
    assert "headwater flow runs" in out and "etl-run" in out and "report-run" in out
