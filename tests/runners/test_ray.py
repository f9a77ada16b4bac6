"""`RayTaskRunner` beyond the contract: values left on the workers, recording from Ray workers,
calls that cannot be shipped, a worker killed mid-task, per-call Ray options, and which Ray a
runner starts and stops. On the session's shared local Ray (`ray_session`), except the
lifecycle test, which needs a process of its own where Ray is not running yet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from headwater import flow, task
from headwater.runners import RayTaskRunner, remote_options
from tests.runners.side_effects import Traced, executions
from tests.runtime.test_recording import cli_json

pytestmark = pytest.mark.usefixtures("ray_session")


@task
def make_tracked(log: str) -> Traced:
    return Traced(log, "x" * 1000)


@task
def payload_size(value: Traced) -> int:
    return len(value.value)


@task
def identity(value: Any) -> Any:
    return value


def test_values_stay_on_the_workers_until_the_flow_asks_for_one(tmp_path: Path) -> None:
    log = tmp_path / "unpickled-in"

    @flow(task_runner=RayTaskRunner())
    def pipeline() -> tuple[int, list[int], str]:
        made = make_tracked.submit(str(log))
        size = payload_size.submit(made).result()  # the downstream run reads it on a worker
        before = executions(log)
        return size, before, made.result().value[:1]  # now the flow asks for it

    size, before, first = pipeline()
    assert size == 1000 and first == "x"
    assert before and os.getpid() not in before  # read on a worker, never in the flow
    assert os.getpid() in executions(log)  # until `.result()` asked for it here


def test_every_task_run_on_ray_is_recorded_completely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_RECORD", "1")

    @task
    def double(i: int) -> int:
        return 2 * i

    @task(retries=1)
    def flaky() -> str:
        marker = tmp_path / "failed-once"
        if not marker.exists():
            marker.touch()
            raise RuntimeError("first attempt fails")
        return "second attempt"

    @flow(task_runner=RayTaskRunner())
    def recorded(n: int) -> int:
        doubled = double.map(range(n))
        flaky.submit()
        return sum(double.map(doubled).result())

    from headwater.api import reset_recorder

    reset_recorder()  # whatever recorder an earlier test started, this one starts afresh
    try:
        assert recorded(10) == 4 * sum(range(10))
    finally:
        reset_recorder()
    (run,) = cli_json(tmp_path, "ls")
    assert run["state_type"] == "COMPLETED"
    tasks = {t["name"]: t for t in cli_json(tmp_path, "show", run["id"])["task_runs"]}
    assert len(tasks) == 21
    assert all(t["state_type"] == "COMPLETED" for t in tasks.values())
    doubles = [t for name, t in tasks.items() if name.startswith("double-")]
    assert all([s["name"] for s in t["states"]] == ["Pending", "Running", "Completed"] for t in doubles)
    assert [s["name"] for s in tasks["flaky-0"]["states"]] == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "Completed",
    ]  # fmt: skip


def test_a_worker_killed_mid_task_crashes_its_run_once_and_ray_stays_usable(tmp_path: Path) -> None:
    executions = tmp_path / "executions"

    @task
    def die() -> None:
        with open(executions, "a") as file:
            file.write("ran\n")
        os.kill(os.getpid(), signal.SIGKILL)

    @flow(task_runner=RayTaskRunner())
    def doomed() -> tuple[str, str]:
        dead = die.submit()
        dead.wait()
        return dead.state.name, str(dead.state.message)

    name, message = doomed()
    assert name == "Crashed" and "WorkerCrashedError" in message
    assert executions.read_text() == "ran\n"  # Ray did not run it again by itself

    @flow(task_runner=RayTaskRunner())
    def after() -> int:
        return int(identity.submit(1).result())

    assert after() == 1


@task
def assigned_cpus() -> float:
    import ray

    return float(ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0))


def test_remote_options_apply_to_the_runs_submitted_inside_the_block() -> None:
    @flow(task_runner=RayTaskRunner())
    def sized() -> tuple[float, float, float]:
        with remote_options(num_cpus=2):
            big = assigned_cpus.submit().result()
            with remote_options(num_cpus=0.5, memory=50 * 1024 * 1024):
                small = assigned_cpus.submit().result()
        return big, small, assigned_cpus.submit().result()

    assert sized() == (2.0, 0.5, 1.0)
    with pytest.raises(TypeError, match="max_retries"):
        with remote_options(max_retries=3):
            pass


@task
def pause(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@task
def cpus_after(_upstream: float) -> float:
    return assigned_cpus.fn()


def test_options_stay_with_a_run_that_waits_for_its_upstream_and_tasks_carry_their_own() -> None:
    """A run submitted while its upstream still runs is handed to Ray later, from another
    thread, outside the block: the options read at `.submit()` still apply. A task's own
    `runner_options` apply everywhere, under any block around the submit."""
    half = assigned_cpus.with_options(runner_options={"num_cpus": 0.5})

    @flow(task_runner=RayTaskRunner())
    def sized() -> tuple[float, float, float]:
        with remote_options(num_cpus=2):
            waiting = cpus_after.submit(pause.submit(0.5))
        with remote_options(num_cpus=1.5):
            overridden = half.submit()
        return waiting.result(), half.submit().result(), overridden.result()

    assert sized() == (2.0, 0.5, 1.5)


def test_a_task_with_options_ray_does_not_know_fails_saying_which() -> None:
    misspelt = assigned_cpus.with_options(runner_options={"gpus": 1})

    @flow(task_runner=RayTaskRunner())
    def wrong() -> tuple[bool, str, float]:
        state = misspelt.submit(return_state=True)
        return state.is_failed(), str(state.message), assigned_cpus.submit().result()

    failed, message, fine = wrong()
    assert failed and fine == 1.0
    assert "runner_options of the task got unknown Ray options ['gpus']" in message


def test_a_runner_leaves_a_ray_it_did_not_start_running() -> None:
    runner = RayTaskRunner()
    with runner:
        pass
    import ray

    assert ray.is_initialized()
    copy = RayTaskRunner("auto", {"num_cpus": 1}).duplicate()
    assert (copy.address, copy.init_kwargs) == ("auto", {"num_cpus": 1})


LIFECYCLE = """
import ray
from headwater import flow, task
from headwater.runners import RayTaskRunner

@task
def one() -> int:
    return 1

init = dict(num_cpus=1, include_dashboard=False, object_store_memory=100 * 1024 * 1024)

@flow(task_runner=RayTaskRunner(init_kwargs=init))
def small() -> int:
    assert ray.is_initialized()
    return one.submit().result()

assert not ray.is_initialized()
assert small() == 1
print("started and stopped" if not ray.is_initialized() else "left running")
"""


def test_a_runner_starts_a_local_ray_when_none_runs_and_shuts_down_only_that(tmp_path: Path) -> None:
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path), "HEADWATER_RECORD": "0"}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LIFECYCLE)],
        capture_output=True, text=True, env=env, timeout=110,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("started and stopped")


def test_a_call_ray_refuses_fails_that_run_saying_why_and_the_flow_goes_on() -> None:
    """Calls reach Ray from the runner's submit thread; one Ray refuses (here options it
    rejects: CPUs go in `num_cpus`, not `resources`) fails its run, named, and nothing else."""

    @flow(task_runner=RayTaskRunner())
    def refused() -> tuple[bool, str, float]:
        with remote_options(resources={"CPU": 1}):
            state = assigned_cpus.submit(return_state=True)
        return state.is_failed(), str(state.message), assigned_cpus.submit().result()

    failed, message, fine = refused()
    assert failed and fine == 1.0
    assert "cannot be sent to Ray" in message and "num_cpus" in message


def test_a_cached_chain_on_ray_hits_end_to_end_without_loading_upstream_data(tmp_path: Path) -> None:
    from tests.runtime.cache_tasks import grow, produce

    log = str(tmp_path / "chain")

    @flow(task_runner=RayTaskRunner())
    def chain() -> tuple[list[int], list[str]]:
        first = produce.submit(log, 3)
        second = grow.submit(log, first)
        third = grow.submit(log, second)
        return third.result().value, [f.state.name for f in (first, second, third)]

    assert chain() == ([0, 1, 2, 3, 4], ["Completed", "Completed", "Completed"])
    runs, grows = executions(Path(log + ".runs")), executions(Path(log + ".grow"))
    loads = len(executions(Path(log + ".loads")))
    assert chain() == ([0, 1, 2, 3, 4], ["Cached", "Cached", "Cached"])
    assert executions(Path(log + ".runs")) == runs and executions(Path(log + ".grow")) == grows
    assert executions(Path(log + ".loads"))[loads:] == [os.getpid()]  # the last value, here only
