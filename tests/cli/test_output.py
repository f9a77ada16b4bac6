"""How the real `headwater` command meets its stdout and its arguments: a reader that stops
reading, a pipe that has no width, a terminal that has one, and values an option does not take."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from uuid import uuid4

import pytest

from headwater.api import FlowRunRecord, StateClient, StateServer
from headwater.cli._main import CLOSED_PIPE_STATUS
from tests.api.helpers import state
from tests.cli.helpers import HEADWATER, TOKEN, cli, in_terminal

LONG_NAME = "swift-ocelot-of-the-very-long-name-that-no-terminal-of-eighty-columns-fits"
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.mark.parametrize("verb", [["ls", "--json"], ["ls"], ["show", "PARENT"], ["show", "PARENT", "--json"],
                                  ["watch", "--once"]], ids=" ".join)
def test_a_closed_pipe_ends_the_command_quietly(verb: list[str], recorded) -> None:  # type: ignore[no-untyped-def]
    """`headwater runs ls --json | head -1`: the reader is gone before we write; no traceback,
    and 141, as a shell reports for a Unix tool that a closed pipe ended."""
    _, ids = recorded
    argv = [str(ids["parent"]) if arg == "PARENT" else arg for arg in verb]
    proc = subprocess.Popen([*HEADWATER, "runs", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the interpreter has started: every write finds it closed
    err = proc.stderr.read()
    assert proc.wait(30) == CLOSED_PIPE_STATUS == 141
    assert err == ""


def test_head_reads_its_line_and_nothing_complains(recorded) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(f"{' '.join(HEADWATER)} runs ls --json | head -1", shell=True,
                          capture_output=True, text=True, timeout=30, check=True)
    assert (done.stdout, done.stderr) == ("[\n", "")


@pytest.fixture
def long_named(tmp_path: Path) -> tuple[Path, str]:
    """A home with one flow run whose names are far wider than a terminal."""
    home = tmp_path / "home"
    srv = StateServer(home, port=0, token=TOKEN, synchronous="NORMAL")
    srv.start()
    try:
        with StateClient(srv.url, token=TOKEN) as c:
            run = FlowRunRecord(uuid4(), LONG_NAME, f"flow-{LONG_NAME}", {}, created=time.time())
            c.create_flow_run(run)
            c.set_state(state(run.id, "RUNNING"))
            c.set_state(state(run.id, "COMPLETED", message=f"done: {LONG_NAME}"))
    finally:
        srv.stop(0.5)
    return home, str(run.id)


def test_piped_tables_are_never_cut_to_a_width(long_named: tuple[Path, str]) -> None:
    home, run_id = long_named
    env = {"HEADWATER_HOME": str(home)}
    os.environ.pop("COLUMNS", None)  # no width given: rich would assume 80
    for verb in (["ls"], ["show", run_id]):
        done = cli("runs", *verb, env=env)
        assert done.returncode == 0, done.stderr
        rows = [line for line in done.stdout.splitlines() if LONG_NAME in line]
        assert rows, done.stdout
        assert f"flow-{LONG_NAME}" in rows[0] and DATE.search(rows[0]), rows[0]  # one row, one line
        assert "…" not in done.stdout


def test_on_a_terminal_tables_still_fit_its_width(long_named: tuple[Path, str]) -> None:
    home, _ = long_named
    out = in_terminal("runs", "ls", columns=80, env={"HEADWATER_HOME": str(home)})
    assert "swift-" in out and "…" in out and LONG_NAME not in out
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.mark.parametrize(("argv", "option", "valid"), [
    (["runs", "ls", "--state", "bogus"], "--state",
     "'bogus' (choose from SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED, CANCELLED, PAUSED, CANCELLING)"),
    (["runs", "logs", "0123abcd", "--level", "loud"], "--level",
     "'loud' (choose from NOTSET, DEBUG, INFO, WARN, WARNING, ERROR, CRITICAL, FATAL, or a number)"),
], ids=["state", "level"])
def test_an_unknown_value_is_refused_naming_the_option_and_its_values(argv: list[str], option: str,
                                                                       valid: str) -> None:
    done = cli(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert f"argument {option}: invalid choice: " in done.stderr and valid in done.stderr, done.stderr


def test_known_values_are_taken_in_any_case(recorded) -> None:  # type: ignore[no-untyped-def]
    _, ids = recorded
    for argv in (["runs", "ls", "--state", "Failed", "--json"], ["runs", "logs", str(ids["parent"]), "--level", "warning"]):
        done = cli(*argv)
        assert done.returncode == 0, done.stderr
    assert str(ids["child"]) in cli("runs", "ls", "--state", "failed", "--json").stdout
