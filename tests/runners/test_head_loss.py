"""A Dask scheduler or a Ray head SIGKILLed mid-flow: the flow ends CRASHED, in bounded time,
saying which head it lost, and never hangs.

Everything runs in processes of its own: the head (`dask scheduler`, `ray start --head
--block`), a worker, and the flow, so the test can time the flow's process and kill it if it
hangs. The flow records into the server embedded in its process, under the test's
HEADWATER_HOME; the test reads the runs back from that database once the flow is gone."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

from tests.runners.cluster_processes import PYTHON, Processes
from tests.runtime.test_recording import cli_json

#: The longest a flow may take to end once its head is gone. Dask notices at once (the client's
#: connection closes); Ray after `_headwatch.HEAD_GRACE` (5 s) of a silent GCS, then the flow
#: flushes its records and shuts Ray down.
BOUND = 30.0

FLOW = """
import sys, time
from pathlib import Path
from headwater import flow, task
from headwater.runners import {runner}

started = Path(sys.argv[2])

@task
def slow(i: int) -> int:
    started.touch()
    time.sleep(20)
    return i

@flow(task_runner={runner}({runner_args}))
def long_flow() -> list[int]:
    return [f.result() for f in [slow.submit(i) for i in range(4)]]

try:
    long_flow()
except Exception as exc:
    print(f"flow raised {{type(exc).__name__}}: {{exc}}", flush=True)
"""


def _run_until_started(tmp_path: Path, processes: Processes, runner: str, runner_args: str,
                       env: dict[str, str], timeout: float = 90) -> subprocess.Popen[bytes]:  # fmt: skip
    script = tmp_path / "flow.py"
    script.write_text(FLOW.format(runner=runner, runner_args=runner_args))
    started = tmp_path / "a-task-started"
    proc = processes.start(
        [PYTHON, str(script), "unused", str(started)], env=env, log=tmp_path / "flow.log"
    )
    deadline = time.monotonic() + timeout
    while not started.exists():
        assert proc.poll() is None, (tmp_path / "flow.log").read_text()
        assert time.monotonic() < deadline, "no task started"
        time.sleep(0.1)
    return proc


def _ends_within(proc: subprocess.Popen[bytes], bound: float, log: Path) -> float:
    began = time.monotonic()
    try:
        proc.wait(bound)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the flow still runs {bound} s after its head died:\n{log.read_text()}")
    return time.monotonic() - began


def _crashed_naming(home: Path, head: str) -> list[str]:
    """Asserts the flow run and every task run ended CRASHED, the flow's message naming the
    lost head; returns the task runs' messages."""
    (run,) = cli_json(home, "ls")
    shown = cli_json(home, "show", run["id"])
    assert run["state_type"] == "CRASHED", shown["states"]
    assert "lost" in shown["states"][-1]["message"] and head in shown["states"][-1]["message"]
    assert run["task_run_count"] == 4
    assert all(t["states"][-1]["type"] == "CRASHED" for t in shown["task_runs"]), shown["task_runs"]
    return [t["states"][-1]["message"] for t in shown["task_runs"]]


def test_a_dask_scheduler_killed_mid_flow_crashes_the_flow_at_once(tmp_path: Path, processes: Processes) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "HEADWATER_HOME": str(home)}
    scheduler, address = processes.dask_scheduler(tmp_path / "scheduler.log")
    processes.dask_worker(address, "worker", tmp_path / "worker.log", env=env)
    flow_process = _run_until_started(tmp_path, processes, "DaskTaskRunner", repr(address), env)
    processes.kill(scheduler)
    took = _ends_within(flow_process, BOUND, tmp_path / "flow.log")
    print(f"the flow process ended {took:.1f} s after the scheduler was killed")
    assert took < 10, took  # the client notices a closed connection at once
    assert f"lost the Dask scheduler at {address}" in (tmp_path / "flow.log").read_text()
    messages = _crashed_naming(home, address)
    assert all(address in message for message in messages)  # the client cancelled them all


def test_a_ray_head_killed_mid_flow_crashes_the_flow_in_bounded_time(tmp_path: Path, processes: Processes) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # Recent Ray turns token authentication on: head and driver share a token of our own.
    env.update(HEADWATER_HOME=str(home), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    head, address = processes.ray_head(env, tmp_path / "head.log")
    runner_args = f"{address!r}, init_kwargs={{'log_to_driver': False}}"
    flow_process = _run_until_started(tmp_path, processes, "RayTaskRunner", runner_args, env)
    processes.kill(head)
    took = _ends_within(flow_process, BOUND, tmp_path / "flow.log")
    print(f"the flow process ended {took:.1f} s after the head was killed")
    # Named by the GCS address Ray resolved (the node's IP, whatever host the driver gave).
    gcs_port = ":" + address.rpartition(":")[2]
    assert "lost the Ray head at " in (tmp_path / "flow.log").read_text()
    # Runs on the dead node may carry Ray's NodeDiedError, which it raised first; those
    # still queued carry the loss of the head.
    _crashed_naming(home, gcs_port)
    assert took > 4  # it waited out the grace for a silent head, not less
