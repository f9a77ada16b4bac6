"""Ctrl-C during a flow, sync or async: a real SIGINT to a real flow process while a task
runs, then the recorded states read back through the `headwater runs` CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from headwater import flow
from headwater.runtime import State, StateType

SYNC = """
import sys, time
from pathlib import Path
from headwater import flow, task

@task
def wait_here(marker):
    Path(marker).write_text("inside the task")
    time.sleep(60)

@flow
def pipeline(marker):
    wait_here(marker)

pipeline(sys.argv[1])
"""

ASYNC = """
import asyncio, sys
from pathlib import Path
from headwater import flow, task

@task
async def wait_here(marker):
    Path(marker).write_text("inside the task")
    await asyncio.sleep(60)

@flow
async def pipeline(marker):
    await wait_here(marker)

asyncio.run(pipeline(sys.argv[1]))
"""

# An async flow waiting on a sync task in a worker thread: the flow marks the running task.
ASYNC_WITH_THREADS = """
import asyncio, sys, time
from pathlib import Path
from headwater import flow, task
from headwater.runners import ConcurrentTaskRunner

@task
def wait_here(marker):
    Path(marker).write_text("inside the task")
    time.sleep(60)

@flow(task_runner=ConcurrentTaskRunner())
async def pipeline(marker):
    future = wait_here.submit(marker)
    while not future.done():
        await asyncio.sleep(0.01)

asyncio.run(pipeline(sys.argv[1]))
"""

CTRL_C = "KeyboardInterrupt (Ctrl-C)"


def interrupt_inside_the_task(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    script, marker = tmp_path / "pipeline.py", tmp_path / "marker"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home")}
    env.pop("HEADWATER_API_URL", None)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(marker)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)
    time.sleep(0.2)  # well inside the sleep
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def shown(tmp_path: Path) -> Any:
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home")}
    env.pop("HEADWATER_API_URL", None)

    def cli(*args: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "headwater.cli", "runs", *args, "--json"], capture_output=True, text=True,
            env=env, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)

    (run,) = cli("ls")
    return cli("show", run["id"])


@pytest.mark.parametrize("code", [SYNC, ASYNC], ids=["sync", "async"])
def test_ctrl_c_crashes_the_flow_and_its_task_saying_so(tmp_path: Path, code: str) -> None:
    result = interrupt_inside_the_task(tmp_path, code)
    assert result.returncode == -signal.SIGINT, result.stderr  # the interrupt still ends Python
    run = shown(tmp_path)
    assert (run["state_type"], run["state_name"]) == ("CRASHED", "Crashed")
    assert run["states"][-1]["message"] == f"Flow run interrupted by {CTRL_C}"
    (task_run,) = run["task_runs"]
    assert task_run["state_type"] == "CRASHED"
    assert task_run["states"][-1]["message"] == f"Task run interrupted by {CTRL_C}"
    assert f"Finished in state Crashed('Flow run interrupted by {CTRL_C}')" in result.stderr


def test_ctrl_c_in_an_async_flow_marks_its_running_thread_task_crashed(tmp_path: Path) -> None:
    result = interrupt_inside_the_task(tmp_path, ASYNC_WITH_THREADS)
    assert result.returncode == -signal.SIGINT, result.stderr
    run = shown(tmp_path)
    assert run["state_type"] == "CRASHED" and run["states"][-1]["message"] == f"Flow run interrupted by {CTRL_C}"
    (task_run,) = run["task_runs"]
    assert task_run["state_type"] == "CRASHED"
    assert task_run["states"][-1]["message"] == f"flow run {run['name']!r} was interrupted by {CTRL_C}"


def test_a_cancellation_no_interrupt_caused_ends_the_flow_cancelled_and_leaves_sigint_as_it_was() -> None:
    ended: list[State] = []

    @flow(on_cancellation=[lambda flow, run, state: ended.append(state)])
    async def waits() -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        running = asyncio.ensure_future(waits())
        await asyncio.sleep(0.2)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    before = signal.getsignal(signal.SIGINT)
    asyncio.run(main())
    assert [(s.type, s.message) for s in ended] == [(StateType.CANCELLED, "CancelledError")]
    assert signal.getsignal(signal.SIGINT) is before
