"""`ProcessPoolTaskRunner` beyond the contract: recording from worker processes, values and
arguments that do not pickle, and a worker that dies. Real spawn pools, real flow processes,
the real embedded state service, read back through the `headwater runs` CLI."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from headwater import ShippingError, flow, task
from headwater.runners import ProcessPoolTaskRunner
from tests.runtime.test_recording import cli_json, run_script

RECORDED_PIPELINE = """
import os
from pathlib import Path
from headwater import flow, task
from headwater.runners import ProcessPoolTaskRunner

MARKER = Path({marker!r})

@task
def double(i: int) -> int:
    return 2 * i

@task(retries=1)
def flaky() -> str:
    if not MARKER.exists():
        MARKER.touch()
        raise RuntimeError("first attempt fails")
    return "second attempt"

@task
def broken() -> None:
    raise ValueError("broken on purpose")

@flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
def pipeline(n: int) -> int:
    doubled = double.map(range(n))
    total = sum(double.map(doubled).result())
    flaky.submit()
    broken.submit()
    return total

if __name__ == "__main__":
    print(pipeline(20), os.getpid())
"""


def test_runs_in_worker_processes_are_recorded_completely(tmp_path: Path) -> None:
    code = RECORDED_PIPELINE.format(marker=str(tmp_path / "flaky-marker"))
    result = run_script(tmp_path, code, timeout=120)
    assert result.returncode == 0, result.stderr
    total, flow_pid = result.stdout.split()
    assert total == str(4 * sum(range(20)))

    (run,) = cli_json(tmp_path, "ls")
    assert run["state_type"] == "COMPLETED"
    assert (run["host"], run["pid"]) == (socket.gethostname(), int(flow_pid))
    shown = cli_json(tmp_path, "show", run["id"])
    tasks = {t["name"]: t for t in shown["task_runs"]}
    assert len(tasks) == 42
    doubles = [t for name, t in tasks.items() if name.startswith("double-")]
    assert all(t["state_type"] == "COMPLETED" for t in doubles)
    assert all([s["name"] for s in t["states"]] == ["Pending", "Running", "Completed"] for t in doubles)
    assert [s["name"] for s in tasks["flaky-0"]["states"]] == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "Completed",
    ]  # fmt: skip
    assert tasks["broken-0"]["state_type"] == "FAILED"
    assert "broken on purpose" in tasks["broken-0"]["states"][-1]["message"]
    # Each task run says which of the two worker processes ran it, never the flow's process.
    worker_pids = {t["pid"] for t in tasks.values()}
    assert 1 <= len(worker_pids) <= 2 and int(flow_pid) not in worker_pids
    assert {t["host"] for t in tasks.values()} == {socket.gethostname()}


@task
def identity(value: Any) -> Any:
    return value


@task
def make_lock() -> Any:
    return threading.Lock()


def test_a_value_that_does_not_pickle_back_leaves_the_run_completed_without_its_value() -> None:
    """...and what needs the value fails naming the run and the type; the flow goes on."""

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def returns_a_lock() -> tuple[str, str, str, Any, int]:
        future = make_lock.submit()
        needs = identity.submit(future)
        future.wait()
        with pytest.raises(ShippingError, match=r"'make_lock-0'.*\(a _thread\.lock\) cannot leave"):
            future.result()
        needs.wait()
        return future.state.name, needs.state.name, str(needs.state.message), needs.exception(), identity.submit(3).result()

    made, needs, message, error, rest = returns_a_lock()
    assert (made, needs, rest) == ("Completed", "Failed", 3)
    assert isinstance(error, ShippingError) and "'make_lock-0'" in message and "_thread.lock" in message


def test_a_worker_killed_mid_task_crashes_its_run_and_the_flow_ends() -> None:
    @task
    def die() -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def doomed() -> tuple[str, str, str]:
        dead = die.submit()
        dead.wait()
        after = identity.submit(1)
        after.wait()
        return dead.state.name, str(dead.state.message), after.state.name

    dead, message, after = doomed()
    assert dead == "Crashed" and "BrokenProcessPool" in message
    assert after == "Crashed"  # the pool is broken: later runs crash, nothing hangs
