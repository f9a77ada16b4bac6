"""`RayTaskRunner` when the engine underneath fails: workers killed mid-task (retried, once per
attempt), a task that kills every worker it lands on, values that cannot leave their worker,
and a finished run whose value died with its node (never run again).

Real Ray worker processes, killed for real (SIGKILL, `os._exit`); Ray starts new ones on
demand. Each side effect is counted in a file, since the task runs in another process. On the
session's local Ray (`ray_session`), except the lost node, which needs a cluster of nodes of
its own (in a child process: this one is already connected to the session's Ray)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from headwater import flow, task
from headwater.errors import ShippingError, WorkerLost
from headwater.runners import RayTaskRunner
from tests.runners.conftest import ROOT
from tests.runners.side_effects import count as _count
from tests.runners.side_effects import executions as _executions

pytestmark = pytest.mark.usefixtures("ray_session")


def _final(future: Any) -> tuple[str, str, BaseException | None]:
    """A run's final state as (name, message, error): a flow that returned the `State` itself
    would be judged by it."""
    future.wait()
    return future.state.name, str(future.state.message), future.exception()


@task
def identity(value: Any) -> Any:
    return value


def test_a_worker_killed_mid_task_is_retried_once(tmp_path: Path) -> None:
    executions = tmp_path / "executions"

    @task(retries=1)
    def dies_once() -> str:
        if _count(executions) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return "second attempt"

    @flow(task_runner=RayTaskRunner())
    def retried() -> tuple[str, int, list[str], str]:
        future = dies_once.submit()
        value = future.result()
        run = future.task_run
        return value, run.run_count, [s.name for s in run.history], str(run.history[2].message)

    value, run_count, history, lost = retried()
    assert (value, run_count) == ("second attempt", 2)
    first, second = _executions(executions)
    assert first != second  # a new worker process ran the retry
    assert history == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert "attempt 1 lost: the Ray worker running it died (WorkerCrashedError" in lost


def test_a_worker_that_exits_under_a_task_without_retries_crashes_it_once(tmp_path: Path) -> None:
    executions = tmp_path / "executions"

    @task
    def exits() -> None:
        _count(executions)
        os._exit(1)

    @flow(task_runner=RayTaskRunner())
    def doomed() -> tuple[tuple[str, str, BaseException | None], int]:
        future = exits.submit()
        return _final(future), future.task_run.run_count

    (name, message, error), run_count = doomed()
    assert (name, run_count, len(_executions(executions))) == ("Crashed", 1, 1)
    assert "the Ray worker running it died (WorkerCrashedError" in message
    import ray

    assert isinstance(error, WorkerLost)
    assert isinstance(error.__cause__, ray.exceptions.WorkerCrashedError)  # Ray's own, kept


def test_a_task_that_kills_every_worker_fails_in_bounded_time_and_ray_stays_usable(tmp_path: Path) -> None:
    executions = tmp_path / "executions"

    @task(retries=2)
    def poison() -> None:
        _count(executions)
        os.kill(os.getpid(), signal.SIGKILL)

    @flow(task_runner=RayTaskRunner())
    def poisoned() -> tuple[str, str, BaseException | None]:
        return _final(poison.submit())

    started = time.monotonic()
    name, message, error = poisoned()
    assert time.monotonic() - started < 60
    assert (name, len(_executions(executions))) == ("Failed", 3)
    assert "every attempt (3 of 3) lost its worker" in message and isinstance(error, WorkerLost)

    @flow(task_runner=RayTaskRunner())
    def afterwards() -> int:
        return int(identity.submit(7).result())

    assert afterwards() == 7


@task
def make_lock() -> threading.Lock:
    return threading.Lock()


@task
def lock_type(lock: Any) -> str:
    return type(lock).__name__


def test_a_value_that_cannot_leave_its_worker_fails_what_needs_it_and_the_flow_goes_on() -> None:
    @flow(task_runner=RayTaskRunner())
    def unshippable() -> tuple[str, tuple[str, str, BaseException | None], int]:
        made = make_lock.submit()
        needs = lock_type.submit(made)
        with pytest.raises(ShippingError, match=r"'make_lock-0'.*a _thread\.lock"):
            made.result()
        return made.state.name, _final(needs), identity.submit(5).result()

    made, (name, message, error), rest = unshippable()
    assert made == "Completed"  # it did complete, on its worker
    assert name == "Failed" and isinstance(error, ShippingError)
    assert "'make_lock-0'" in message and "(a _thread.lock)" in message
    assert rest == 5


LOST_NODE = """
import os, sys, time
import ray
from ray.cluster_utils import Cluster
from headwater import flow, task
from headwater.errors import UpstreamLost
from headwater.runners import RayTaskRunner, remote_options

executions = sys.argv[1]
store = 80 * 1024 * 1024
fast = {"health_check_period_ms": 200, "health_check_failure_threshold": 3}
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 1, "include_dashboard": False, "object_store_memory": store, "_system_config": fast})
doomed = cluster.add_node(num_cpus=1, resources={"doomed": 1}, object_store_memory=store)

@task
def make() -> bytes:
    with open(executions, "a") as f:
        f.write("ran\\n")
    return b"x" * 300_000  # big enough for the node's object store, not the owner's memory

@task
def size(value: bytes) -> int:
    return len(value)

@flow(task_runner=RayTaskRunner(cluster.address, {"log_to_driver": False}))
def lost() -> str:
    with remote_options(resources={"doomed": 1}):
        made = make.submit()
        made.wait()
    cluster.remove_node(doomed, allow_graceful=False)
    needs = size.submit(made)
    needs.wait(90)
    error = needs.exception()
    assert needs.state.name == "Crashed" and isinstance(error, UpstreamLost), needs.state
    assert isinstance(error.__cause__, ray.exceptions.ObjectLostError)  # Ray's own, kept
    try:
        made.result()
    except UpstreamLost as exc:
        fetched = str(exc)
    return str(needs.state.message) + "|" + fetched

print(lost())
cluster.shutdown()
"""


@pytest.mark.slow
def test_a_finished_run_whose_node_died_is_never_run_again(tmp_path: Path) -> None:
    """Ray with `max_retries=0` never reconstructs a lost value by running its task again; the
    downstream that needs it ends CRASHED with `UpstreamLost` naming the lost run."""
    executions = tmp_path / "executions"
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOST_NODE), str(executions)],
        capture_output=True, text=True, env=env, timeout=110,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    downstream, fetched = result.stdout.strip().splitlines()[-1].split("|")
    assert executions.read_text() == "ran\n"  # never executed again
    for message in (downstream, fetched):
        assert "the value of task run 'make-0'" in message and "never run again" in message
