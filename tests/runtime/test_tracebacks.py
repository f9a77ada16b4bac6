"""A failure is printed once, with the user's frames: real flow scripts in subprocesses, their
stderr read as a user would, the stored run logs read back through the CLI; and in-process,
what a caller who catches the exception (or asks for the state) gets."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import headwater
from headwater import flow, task

PACKAGE_DIR = os.path.dirname(headwater.__file__) + os.sep
TRACEBACK = "Traceback (most recent call last)"
BAD_INPUT = "ValueError: invalid literal for int() with base 10: 'oops'"

SYNC_SCRIPT = """
from headwater import flow, task

@task
def parse(x):
    return int(x)

@flow
def pipeline(value):
    return parse(value)

pipeline("oops")
"""

ASYNC_SCRIPT = """
import asyncio
from headwater import flow, task

@task
async def parse(x):
    return int(x)

@flow
async def pipeline(value):
    return await parse(value)

asyncio.run(pipeline("oops"))
"""

CHAINED_SCRIPT = """
from headwater import flow, task

class BadRecord(Exception):
    pass

@task
def parse(x):
    try:
        return int(x)
    except ValueError as exc:
        raise BadRecord(f"record {x!r} is not a number") from exc

@flow
def load(value):
    return parse(value)

@flow
def pipeline(value):
    return load(value)

pipeline("oops")
"""


def run_script(tmp_path: Path, code: str, **env: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent(code))
    full_env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home"), **env}
    full_env.pop("HEADWATER_API_URL", None)
    if "HEADWATER_LOG_LEVEL" not in env:
        full_env.pop("HEADWATER_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=full_env, cwd=tmp_path, timeout=60
    )
    return script, result


def cli(tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home"), "COLUMNS": "400"}
    env.pop("HEADWATER_API_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "runs", *args], capture_output=True, text=True, env=env,
        timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def frame_line(script: Path, line: int, function: str) -> str:
    return f'File "{script}", line {line}, in {function}'


@pytest.mark.parametrize(
    ("code", "parse_line", "pipeline_line"), [(SYNC_SCRIPT, 6, 10), (ASYNC_SCRIPT, 7, 11)], ids=["sync", "async"]
)
def test_a_bad_input_prints_one_traceback_of_the_users_frames(
    tmp_path: Path, code: str, parse_line: int, pipeline_line: int
) -> None:
    script, result = run_script(tmp_path, code)
    assert result.returncode == 1
    err = result.stderr
    assert err.count(TRACEBACK) == 1, err
    assert PACKAGE_DIR not in err, err  # no frame of ours, not even the call into the flow
    assert frame_line(script, parse_line, "parse") in err and "return int(x)" in err
    assert frame_line(script, pipeline_line, "pipeline") in err
    assert err.rstrip().endswith("headwater frames hidden; HEADWATER_LOG_LEVEL=DEBUG shows them]"), err
    assert BAD_INPUT in err
    # The task's failure line is one line that says where it was raised.
    (failed,) = [line for line in err.splitlines() if "Task run 'parse-0' - Finished in state Failed" in line]
    assert failed.endswith(f"(raised at {script}:{parse_line} in parse)")
    frames = [line for line in err.splitlines() if line.startswith('  File "')]
    assert len(frames) == (3 if code is SYNC_SCRIPT else 6), err  # asyncio.run adds 3 of its own


def test_debug_shows_every_frame(tmp_path: Path) -> None:
    script, result = run_script(tmp_path, SYNC_SCRIPT, HEADWATER_LOG_LEVEL="DEBUG")
    err = result.stderr
    engine = os.path.join(PACKAGE_DIR, "runtime", "engine.py")
    flows = os.path.join(PACKAGE_DIR, "runtime", "flows.py")
    assert f'File "{engine}"' in err and f'File "{flows}"' in err, err
    assert frame_line(script, 6, "parse") in err
    assert "hidden" not in err
    assert err.count(TRACEBACK) == 2  # the task's failure line carries its traceback too


def test_the_stored_log_keeps_the_full_traceback(tmp_path: Path) -> None:
    script, result = run_script(tmp_path, SYNC_SCRIPT)
    assert result.returncode == 1
    (run,) = json.loads(cli(tmp_path, "ls", "--json"))
    lines = [json.loads(line) for line in cli(tmp_path, "logs", run["id"], "--json").splitlines()]
    (failed,) = [line for line in lines if line["exception"]]
    assert failed["run"] == "parse-0" and failed["message"].startswith("Finished in state Failed")
    stored = failed["exception"]
    assert stored.startswith(TRACEBACK) and stored.endswith(BAD_INPUT)
    assert frame_line(script, 6, "parse") in stored
    assert f'File "{os.path.join(PACKAGE_DIR, "runtime", "engine.py")}"' in stored  # unfolded
    assert "hidden" not in stored
    shown = cli(tmp_path, "show", run["id"])  # its error section, from the stored line
    assert shown.count(TRACEBACK) == 2 and "line 6, in parse" in shown and "in _attempt" in shown


def test_a_chained_failure_through_a_subflow_keeps_its_cause_and_messages(tmp_path: Path) -> None:
    script, result = run_script(tmp_path, CHAINED_SCRIPT)
    err = result.stderr
    assert PACKAGE_DIR not in err, err
    assert err.count(TRACEBACK) == 2  # the cause, then the failure it caused
    assert "The above exception was the direct cause of the following exception:" in err
    assert BAD_INPUT in err and "BadRecord: record 'oops' is not a number" in err
    for line, function in ((10, "parse"), (12, "parse"), (16, "load"), (20, "pipeline")):
        assert frame_line(script, line, function) in err, err
    notes = [line for line in err.splitlines() if "headwater frames hidden" in line]
    assert len(notes) == 1  # one note, its count adding up the subflow's and the flow's


def test_a_logged_exception_is_shown_on_the_console_without_our_frames(tmp_path: Path) -> None:
    code = """
    from headwater import flow

    def alert(flow, run, state):
        raise RuntimeError("the pager is down")

    @flow(on_completion=[alert])
    def pipeline():
        return 1

    pipeline()
    """
    script, result = run_script(tmp_path, code)
    assert result.returncode == 0
    err = result.stderr
    assert "Hook 'alert' raised; the run's state is unchanged" in err  # logged by the engine
    assert err.count(TRACEBACK) == 1 and "RuntimeError: the pager is down" in err
    assert frame_line(script, 5, "alert") in err
    assert PACKAGE_DIR not in err, err
    assert "[1 headwater frame hidden; HEADWATER_LOG_LEVEL=DEBUG shows them]" in err


@pytest.fixture()
def folding_on() -> Iterator[None]:
    logger = logging.getLogger("headwater")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def _files(exc: BaseException) -> list[str]:
    return [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]


class BadRecord(Exception):
    pass


@task
def parse(x: str) -> int:
    try:
        return int(x)
    except ValueError as exc:
        raise BadRecord(f"record {x!r} is not a number") from exc


@flow
def pipeline(value: str) -> int:
    return parse(value)


def test_a_caught_failure_keeps_its_type_message_and_cause_with_the_callers_frames(folding_on: None) -> None:
    with pytest.raises(BadRecord, match="record 'oops' is not a number") as caught:
        pipeline("oops")
    exc = caught.value
    assert isinstance(exc.__cause__, ValueError) and str(exc.__cause__) == BAD_INPUT.split(": ", 1)[1]
    names = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert names[-2:] == ["pipeline", "parse"]
    assert not [f for f in _files(exc) + _files(exc.__cause__) if f.startswith(PACKAGE_DIR)]
    assert str(exc) == "record 'oops' is not a number"  # the note is beside the message


def test_return_state_gives_the_failed_state_with_its_exception(folding_on: None) -> None:
    state: Any = pipeline("oops", return_state=True)
    assert state.is_failed() and state.message == "BadRecord: record 'oops' is not a number"
    assert isinstance(state.result(raise_on_failure=False), BadRecord)


def test_debug_keeps_our_frames_on_a_caught_failure() -> None:
    logger = logging.getLogger("headwater")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with pytest.raises(BadRecord) as caught:
            pipeline("oops")
    finally:
        logger.setLevel(level)
    assert any(f.startswith(PACKAGE_DIR) for f in _files(caught.value))
    assert not getattr(caught.value, "__notes__", None)
