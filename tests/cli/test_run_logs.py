"""`headwater runs logs` and the end of `runs show`, against the database directly (no server)
and against a standalone server, with lines recorded through the recorder."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from headwater.api import LogRecord, Recorder, StateServer
from headwater.api.recorder import _LocalSink
from headwater.cli import main
from tests.api.helpers import flow, state, task

TOKEN = "cli-token"


def _line(flow_run_id: UUID, message: str, task_run_id: UUID | None = None, level: int = logging.INFO,
          exception: str | None = None) -> LogRecord:
    return LogRecord(flow_run_id, task_run_id, level, time.time(), "headwater.flow_runs", message, exception)


@pytest.fixture
def server() -> Iterator[StateServer]:
    srv = StateServer(Path(os.environ["HEADWATER_HOME"]), port=0, token=TOKEN, synchronous="NORMAL")
    srv.start()
    yield srv
    srv.stop(0.5)


@pytest.fixture
def recorder(server: StateServer) -> Iterator[Recorder]:
    assert server.committer is not None
    rec = Recorder(_LocalSink(server.committer))
    yield rec
    rec.close(5)


def _failed_run(rec: Recorder) -> dict[str, UUID]:
    f = flow("etl")
    t = task(f.id, "load")
    rec.flow_run_created(f)
    rec.state_changed(state(f.id, "RUNNING"))
    rec.task_run_created(t)
    rec.log(_line(f.id, "starting"))
    rec.log(_line(f.id, "loading rows", t.id))
    rec.log(_line(f.id, "load failed", t.id, logging.ERROR,
                  "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad row\n"))
    rec.state_changed(state(f.id, "FAILED", message="ValueError('bad row')"))
    rec.flush(5)
    return {"flow": f.id, "task": t.id}


@pytest.mark.parametrize("mode", ["database", "server"])
def test_runs_logs(mode: str, server: StateServer, recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    ids = _failed_run(recorder)
    if mode == "server":
        monkeypatch.setenv("HEADWATER_API_URL", server.url)
        monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
    assert main(["runs", "logs", str(ids["flow"])[:8], "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["message"], x["run"]) for x in lines] == [
        ("starting", None), ("loading rows", "load-0"), ("load failed", "load-0")]
    assert main(["runs", "logs", str(ids["flow"]), "--level", "ERROR", "--task", "load"]) == 0
    out = capsys.readouterr().out
    assert "ERROR" in out and "load failed" in out and "loading rows" not in out
    assert "    ValueError: bad row" in out
    assert main(["runs", "logs", str(ids["flow"]), "--follow", "--json"]) == 0  # the run ended
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["runs", "show", str(ids["flow"])]) == 0
    out = capsys.readouterr().out
    assert "last log lines (3)" in out and "ValueError('bad row')" in out and "    ValueError: bad row" in out
    with pytest.raises(SystemExit) as refused:  # argparse refuses it before anything is read
        main(["runs", "logs", str(ids["flow"]), "--level", "LOUD"])
    assert refused.value.code == 2


@pytest.mark.parametrize("mode", ["database", "server"])
def test_runs_logs_follow_shows_lines_as_they_are_written(mode: str, server: StateServer, recorder: Recorder) -> None:
    f = flow("live")
    recorder.flow_run_created(f)
    recorder.state_changed(state(f.id, "RUNNING"))
    recorder.log(_line(f.id, "first"))
    recorder.flush(5)
    env = {**os.environ}
    if mode == "server":
        env.update(HEADWATER_API_URL=server.url, HEADWATER_API_TOKEN=TOKEN)
    proc = subprocess.Popen([sys.executable, "-m", "headwater.cli", "runs", "logs", str(f.id), "--follow", "--json"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["message"] == "first"
        recorder.log(_line(f.id, "second"))
        recorder.flush(5)
        assert json.loads(proc.stdout.readline())["message"] == "second"
        recorder.log(_line(f.id, "bye"))
        recorder.state_changed(state(f.id, "COMPLETED"))
        recorder.flush(5)
        assert json.loads(proc.stdout.readline())["message"] == "bye"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
