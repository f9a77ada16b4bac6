"""`DaskTaskRunner` beyond the contract: values stay on the workers, every run is recorded
from them, calls that cannot ship, a worker killed mid-task, Dask inside a task, annotations,
and what the runner starts and closes. Real LocalClusters of worker processes; most tests
share the session's cluster (`dask_cluster.py`)."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any

import dask
import distributed

from headwater import flow, task
from headwater.runners import DaskTaskRunner, TaskCall, get_dask_client
from tests.runners.dask_cluster import shared_dask_address, small_cluster
from tests.runners.side_effects import Traced, executions
from tests.runtime.test_recording import cli_json


@task
def make_traced(log: str, value: int) -> Traced:
    return Traced(log, value)


@task
def bump(traced: Traced) -> int:
    return traced.value + 1


@task
def identity(value: Any) -> Any:
    return value


def _unpickling_pids(log: Path) -> set[int]:
    return set(executions(log))


def test_values_stay_on_the_workers_until_the_flow_asks_for_one(tmp_path: Path) -> None:
    log = tmp_path / "unpickled-in"

    @flow(task_runner=DaskTaskRunner(shared_dask_address()))
    def lazy() -> tuple[int, set[int], int, set[int]]:
        traced = make_traced.submit(str(log), 41)
        downstream = bump.submit(traced)  # gets the value worker-side
        bumped = downstream.result()
        traced.wait()
        before = _unpickling_pids(log)
        value = traced.result().value  # only now does the value come here
        return bumped, before, value, _unpickling_pids(log)

    bumped, before, value, after = lazy()
    assert (bumped, value) == (42, 41)
    assert os.getpid() not in before
    assert os.getpid() in after


def test_every_run_on_dask_is_recorded_by_its_worker(tmp_path: Path) -> None:
    from headwater.api import reset_recorder

    marker = tmp_path / "flaky-marker"

    @task
    def double(i: int) -> int:
        return 2 * i

    @task(retries=1)
    def flaky() -> str:
        if not marker.exists():
            marker.touch()
            raise RuntimeError("first attempt fails")
        return "second attempt"

    @flow(task_runner=DaskTaskRunner(shared_dask_address()))
    def pipeline(n: int) -> int:
        total = sum(double.map(double.map(range(n))).result())
        flaky.submit()
        return total

    reset_recorder()  # this process's recorder may serve an earlier test's home
    try:
        assert pipeline(5) == 4 * sum(range(5))
    finally:
        reset_recorder()
    home = Path(os.environ["HEADWATER_HOME"])
    (run,) = cli_json(home, "ls")
    assert run["state_type"] == "COMPLETED"
    tasks = {t["name"]: t for t in cli_json(home, "show", run["id"])["task_runs"]}
    assert len(tasks) == 11
    doubles = [t for name, t in tasks.items() if name.startswith("double-")]
    assert all([s["name"] for s in t["states"]] == ["Pending", "Running", "Completed"] for t in doubles)
    assert [s["name"] for s in tasks["flaky-0"]["states"]] == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "Completed",
    ]  # fmt: skip


def test_states_a_worker_never_delivers_are_recorded_by_the_flow_at_its_end(tmp_path: Path) -> None:
    """Workers return outcomes without waiting for their records to commit. These workers'
    recorders drop every batch (a buffer of no records), as a worker killed before sending
    would lose them: the flow re-sends them from its copy, and the record is complete."""
    from headwater.api import reset_recorder

    @task(retries=1)
    def flaky(marker: str) -> int:
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first attempt fails")
        return 1

    @flow
    def pipeline(marker: str) -> int:
        return sum(double.map(range(3)).result()) + flaky.submit(marker).result()

    reset_recorder()
    with small_cluster(n_workers=1, env={"HEADWATER_RECORDER_MAX_BUFFERED": "0"}) as cluster:
        try:
            runner = DaskTaskRunner(cluster.scheduler_address)
            assert pipeline.with_options(task_runner=runner)(str(tmp_path / "marker")) == 7
        finally:
            reset_recorder()
    home = Path(os.environ["HEADWATER_HOME"])
    (run,) = cli_json(home, "ls")
    tasks = {t["name"]: t for t in cli_json(home, "show", run["id"])["task_runs"]}
    assert sorted(tasks) == ["double-0", "double-1", "double-2", "flaky-0"]
    for name in ("double-0", "double-1", "double-2"):
        assert [s["name"] for s in tasks[name]["states"]] == ["Pending", "Running", "Completed"]
    assert [s["name"] for s in tasks["flaky-0"]["states"]] == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "Completed",
    ]  # fmt: skip


@task
def double(i: int) -> int:
    return 2 * i


@task
def inverse(i: int) -> float:
    return 1 / i


def test_a_mapped_list_brings_its_values_back_in_order_failures_in_their_place() -> None:
    @flow(task_runner=DaskTaskRunner(shared_dask_address()))
    def inverses() -> list[Any]:
        return inverse.map([2, 0, 4, 5]).result(raise_on_failure=False)

    half, zero, quarter, fifth = inverses()
    assert (half, quarter, fifth) == (0.5, 0.25, 0.2)
    assert isinstance(zero, ZeroDivisionError)


def test_a_worker_killed_mid_task_crashes_that_run_once_and_the_cluster_carries_on(tmp_path: Path) -> None:
    executions = tmp_path / "executions"

    @task
    def die() -> None:
        with executions.open("a") as f:
            f.write("ran\n")
        os.kill(os.getpid(), signal.SIGKILL)

    with small_cluster(n_workers=1) as cluster, distributed.Client(cluster) as client:

        @flow(task_runner=DaskTaskRunner(client))
        def doomed() -> tuple[str, str]:
            dead = die.submit()
            dead.wait()
            return dead.state.name, str(dead.state.message)

        @flow(task_runner=DaskTaskRunner(client))
        def afterwards() -> int:
            return identity.submit(7).result()  # type: ignore[no-any-return]

        name, message = doomed()
        assert name == "Crashed" and "KilledWorker" in message
        assert executions.read_text().split() == ["ran"]  # Dask did not run it again
        assert afterwards() == 7  # the nanny restarted the worker; the client still works
        assert client.status == "running"


def test_a_task_can_use_dask_on_its_own_cluster() -> None:
    @task
    def fan_out(n: int) -> tuple[int, str]:
        with get_dask_client() as client:
            squares = client.map(lambda i: i * i, range(n))
            return sum(client.gather(squares)), client.scheduler.address

    @flow(task_runner=DaskTaskRunner(shared_dask_address()))
    def nested() -> tuple[int, str]:
        return fan_out.submit(10).result()  # type: ignore[no-any-return]

    total, scheduler = nested()
    assert (total, scheduler) == (sum(i * i for i in range(10)), shared_dask_address())


def test_annotations_around_submit_reach_dask_but_retries_do_not() -> None:
    with distributed.Client(shared_dask_address()) as client:
        first, second = sorted(client.scheduler_info()["workers"])
        with DaskTaskRunner(client) as runner, dask.annotate(workers=[second], retries=3):
            future = runner.submit(TaskCall(uuid.uuid4(), _where, None))
            assert future.result(timeout=10) == second
            assert client.run_on_scheduler(_retries_of, future.main.key) == 0


@task
def pause(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@task
def where_after(_upstream: float) -> str:
    return str(distributed.get_worker().address)


def test_annotations_stay_with_a_run_that_waits_for_its_upstream_and_tasks_carry_their_own() -> None:
    """A run submitted while its upstream still runs is handed to Dask later, from the
    runner's thread, outside the block: the annotations read at `.submit()` still apply."""
    with distributed.Client(shared_dask_address()) as client:
        first, second = sorted(client.scheduler_info()["workers"])
    pinned = where_after.with_options(runner_options={"workers": [first]})

    @flow(task_runner=DaskTaskRunner(shared_dask_address()))
    def placed() -> tuple[str, str, str]:
        with dask.annotate(workers=[second]):
            waiting = where_after.submit(pause.submit(0.5))
            overridden = pinned.submit(0.0)
        return waiting.result(), pinned.submit(0.0).result(), overridden.result()

    assert placed() == (second, first, second)


def _where(payload: Any, upstream: tuple[Any, ...]) -> str:
    return str(distributed.get_worker().address)


def _retries_of(key: str, dask_scheduler: Any) -> int:
    return int(dask_scheduler.tasks[key].retries)


def test_the_runner_closes_the_cluster_it_started_and_nothing_it_was_given() -> None:
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "dashboard_address": ":0"})
    with runner:
        cluster, client = runner._owned
        assert runner.submit(TaskCall(uuid.uuid4(), _where, None)).result(timeout=30)
        assert distributed.LocalCluster is type(cluster)
        allowed = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
        assert allowed == 0  # a worker's death never makes Dask run a call twice
    assert client.status == "closed" and cluster.status.name == "closed"

    with distributed.Client(shared_dask_address()) as given:
        shared = DaskTaskRunner(given)
        copy = shared.duplicate()
        assert copy is not shared and copy.address is given  # shared, not copied
        with copy:
            assert copy.submit(TaskCall(uuid.uuid4(), _where, None)).result(timeout=10)
        assert given.status == "running"
