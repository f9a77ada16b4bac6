"""Cancelling a flow whose task runs are running in other processes: on the session's Dask
cluster (the runner's `interrupt`, `Client.run` into the workers) and on the session's local
Ray (`ray.cancel`). The task would run for a minute; the flow must end at once, its task run
CANCELLED, the attempt stopped where it ran, and `on_cancellation` hooks run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater import flow, get_run_context, task
from headwater.runtime import cancel_flow_run
from headwater.api.process_recorders import worker_environment
from headwater.errors import CancelledRun
from headwater.runners import DaskTaskRunner, TaskRunner
from tests.runners.dask_cluster import shared_dask_address
from tests.runtime.test_recording import cli_json


@task
def spin_for_a_minute(marker: str) -> str:
    Path(marker).write_text(str(os.getpid()))
    try:
        for _ in range(3000):  # Python between short sleeps: an interrupt lands within 20 ms
            time.sleep(0.02)
    except BaseException as exc:
        Path(marker + ".stopped").write_text(type(exc).__name__)
        raise
    return "ran to its end"


def _cancel_when_started(marker: Path, ids: list[str], asked: list[float]) -> threading.Thread:
    def cancel() -> None:
        give_up = time.time() + 30
        while not (marker.exists() and ids) and time.time() < give_up:
            time.sleep(0.01)
        asked.append(time.time())
        cancel_flow_run(ids[0], deadline_seconds=10)

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def _cancelled_flow(runner: Callable[[], TaskRunner], tmp_path: Path) -> tuple[Any, float, list[Any]]:
    """Run a flow with one minute-long task on `runner`, cancel it once the task started;
    return the flow run as the CLI shows it, seconds from the cancel to the flow's end, and
    the states its `on_cancellation` hook got."""
    marker = tmp_path / "started"
    ids: list[str] = []
    asked: list[float] = []
    hooked: list[Any] = []

    @flow(task_runner=runner(), on_cancellation=[lambda f, run, state: hooked.append(state)])
    def long_flow() -> None:
        ids.append(str(get_run_context().flow_run.id))
        spin_for_a_minute.submit(str(marker)).wait()

    canceller = _cancel_when_started(marker, ids, asked)
    with pytest.raises(CancelledRun):
        long_flow()
    took = time.time() - asked[0]
    canceller.join(5)
    stopped = Path(str(marker) + ".stopped")
    give_up = time.time() + 5
    while not stopped.exists() and time.time() < give_up:
        time.sleep(0.01)
    assert stopped.exists(), "the task was abandoned on its worker, not interrupted"
    # Read from the server the flow recorded into (a test before may have started it elsewhere).
    shown = cli_json(Path(os.environ["HEADWATER_HOME"]), "show", ids[0], env=worker_environment())
    return shown, took, hooked


def test_a_cancel_interrupts_a_task_running_on_a_dask_worker(tmp_path: Path) -> None:
    shown, took, hooked = _cancelled_flow(lambda: DaskTaskRunner(shared_dask_address()), tmp_path)
    assert took < 3, f"the flow ended {took:.1f} s after the cancel"
    assert shown["state_type"] == "CANCELLED"
    message = shown["states"][-1]["message"]
    assert "spin_for_a_minute-0 (on " in message and "stopped)" in message, message
    assert [t["state_type"] for t in shown["task_runs"]] == ["CANCELLED"]
    assert [s.type.value for s in hooked] == ["CANCELLED"]
    assert (tmp_path / "started.stopped").read_text() == "CancelInterrupt"


@pytest.mark.usefixtures("ray_session")
def test_a_cancel_interrupts_a_task_running_on_ray(tmp_path: Path) -> None:
    from headwater.runners import RayTaskRunner

    shown, took, hooked = _cancelled_flow(RayTaskRunner, tmp_path)
    assert took < 3, f"the flow ended {took:.1f} s after the cancel"
    assert shown["state_type"] == "CANCELLED"
    message = shown["states"][-1]["message"]
    assert "spin_for_a_minute-0" in message and "ray.cancel" in message, message
    assert [t["state_type"] for t in shown["task_runs"]] == ["CANCELLED"]
    assert [s.type.value for s in hooked] == ["CANCELLED"]
    assert (tmp_path / "started.stopped").read_text() == "CancelInterrupt"  # not a Ctrl-C
