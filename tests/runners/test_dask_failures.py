"""`DaskTaskRunner` when the engine underneath fails: workers killed mid-task (retried, once
per attempt), a task that kills every worker it lands on, a finished run whose value died with
its worker (never run again), and values that cannot leave their worker.

Real worker processes, killed for real (SIGKILL, `os._exit`); each side effect counted in a
file, since the task runs in another process. One two-worker cluster for the module: its
nannies restart what the tests kill, so the next test (and flow) finds it whole again."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import distributed
import pytest

from headwater import flow, task
from headwater.errors import ShippingError, UpstreamLost, WorkerLost
from headwater.runners import DaskTaskRunner
from tests.runners.dask_cluster import small_cluster
from tests.runners.side_effects import count as _count
from tests.runners.side_effects import executions as _executions
from tests.runtime.test_recording import cli_json


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with small_cluster(n_workers=2) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture
def whole(client: distributed.Client) -> distributed.Client:
    """The module's client, once both workers are up (a test before may have killed one)."""
    client.wait_for_workers(2, timeout=60)
    return client


@task
def identity(value: Any) -> Any:
    return value


def _history(future: Any) -> list[str]:
    return [state.name for state in future.task_run.history]


def _final(future: Any) -> tuple[str, str, BaseException | None]:
    """A run's final state as (name, message, error), the error fetched from where the run
    left it: a flow that returned the `State` itself would be judged by it."""
    future.wait()
    state = future.state
    return state.name, str(state.message), future.exception()


def test_a_worker_killed_mid_task_is_retried_once_on_a_live_worker(whole: distributed.Client, tmp_path: Path) -> None:
    from headwater.api import reset_recorder

    executions = tmp_path / "executions"

    @task(retries=1)
    def dies_once() -> str:
        if _count(executions) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return "second attempt"

    @flow(task_runner=DaskTaskRunner(whole))
    def retried() -> tuple[str, Any, int, list[str], str]:
        future = dies_once.submit()
        value = future.result()
        lost = future.task_run.history[2]
        return value, future.state.name, future.task_run.run_count, _history(future), str(lost.message)

    reset_recorder()  # this process's recorder may serve an earlier test's home
    try:
        value, final, run_count, history, lost = retried()
    finally:
        reset_recorder()
    assert (value, final, run_count) == ("second attempt", "Completed", 2)
    first, second = _executions(executions)
    assert first != second  # the retry ran in a live worker, not the dead one
    assert history == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert "attempt 1 lost: the Dask worker tcp://" in lost and f"(pid {first})" in lost
    assert "retry 1 of 1" in lost
    # the state service holds the same history: the dead attempt's Running was followed by
    # the flow's AwaitingRetry, and the retry's states took indexes no worker had used
    home = Path(os.environ["HEADWATER_HOME"])
    (run,) = cli_json(home, "ls")
    (task_run,) = cli_json(home, "show", run["id"])["task_runs"]
    assert [s["name"] for s in task_run["states"]] == history
    assert task_run["state_type"] == "COMPLETED"


def test_a_worker_that_exits_under_a_task_without_retries_crashes_it_once_naming_the_worker(
    whole: distributed.Client, tmp_path: Path
) -> None:
    executions = tmp_path / "executions"

    @task
    def exits() -> None:
        _count(executions)
        os._exit(1)

    @flow(task_runner=DaskTaskRunner(whole))
    def doomed() -> Any:
        future = exits.submit()
        return _final(future), _history(future), future.task_run.run_count

    from headwater.api import reset_recorder

    reset_recorder()
    try:
        (name, message, error), history, run_count = doomed()
    finally:
        reset_recorder()
    (pid,) = _executions(executions)
    assert name == "Crashed" and history == ["Pending", "Running", "Crashed"] and run_count == 1
    assert "the Dask worker tcp://" in message and f"(pid {pid})" in message
    assert isinstance(error, WorkerLost)
    assert isinstance(error.__cause__, distributed.scheduler.KilledWorker)  # Dask's own, kept
    # the worker reported Running and died: the state service does not show it running
    home = Path(os.environ["HEADWATER_HOME"])
    (run,) = cli_json(home, "ls")
    (task_run,) = cli_json(home, "show", run["id"])["task_runs"]
    assert [s["name"] for s in task_run["states"]] == history
    assert task_run["state_type"] == "CRASHED"


def test_a_task_that_kills_every_worker_fails_in_bounded_time_and_the_cluster_stays_usable(
    whole: distributed.Client, tmp_path: Path
) -> None:
    executions = tmp_path / "executions"

    # The delay lets a restarted worker finish starting: a nanny whose new worker dies before
    # it has said "started" does not restart it again (Dask's, not ours), and the cluster
    # would stay a worker short for the tests after this one.
    @task(retries=2, retry_delay_seconds=1)
    def poison() -> None:
        _count(executions)
        os.kill(os.getpid(), signal.SIGKILL)

    @flow(task_runner=DaskTaskRunner(whole))
    def poisoned() -> Any:
        future = poison.submit()
        return _final(future), future.task_run.run_count

    started = time.monotonic()
    (name, message, error), run_count = poisoned()
    assert time.monotonic() - started < 60
    assert (name, run_count, len(_executions(executions))) == ("Failed", 3, 3)
    assert "every attempt (3 of 3) lost its worker" in message and "the Dask worker tcp://" in message
    assert isinstance(error, WorkerLost)

    @flow(task_runner=DaskTaskRunner(whole))
    def afterwards() -> int:
        return int(identity.submit(7).result())

    assert afterwards() == 7


def test_crash_retries_give_lost_workers_a_budget_of_their_own(whole: distributed.Client, tmp_path: Path) -> None:
    executions = tmp_path / "executions"

    @task(retries=1, crash_retries=1)
    def dies_then_fails() -> int:
        attempt = _count(executions)
        if attempt == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        if attempt == 2:
            raise RuntimeError("the task's own failure, retried from `retries`")
        return attempt

    @flow(task_runner=DaskTaskRunner(whole))
    def both_budgets() -> tuple[int, int, list[str]]:
        future = dies_then_fails.submit()
        return future.result(), future.task_run.run_count, _history(future)

    value, run_count, history = both_budgets()
    assert (value, run_count) == (3, 3)
    assert history == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying", "Completed",
    ]  # fmt: skip


def _pid_of(client: distributed.Client, worker: str) -> int:
    return int(client.run(os.getpid, workers=[worker])[worker])


def _wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_finished_run_whose_worker_died_is_never_run_again(whole: distributed.Client, tmp_path: Path) -> None:
    executions = tmp_path / "executions"

    @task
    def make() -> str:
        _count(executions)
        return "made once"

    @flow(task_runner=DaskTaskRunner(whole))
    def lost() -> tuple[str, Any, str]:
        made = make.submit()
        made.wait()
        main = made.runner_future.main  # the Dask task that holds the value on a worker
        # the outcome's event can reach the flow before Dask records where the value is held
        _wait_for(lambda: main.status == "finished")
        (holder,) = whole.who_has(main)[main.key]
        os.kill(_pid_of(whole, holder), signal.SIGKILL)
        # Dask computes a lost key again at once when a client holds it: here, that
        # recomputation runs the guard's stand-in, not the task
        _wait_for(lambda: main.status == "error")
        downstream = identity.submit(made)
        downstream.wait()
        with pytest.raises(UpstreamLost, match="make-0"):
            made.result()
        return made.state.name, _final(downstream), str(main.exception())

    made, (name, message, data), error = lost()
    assert made == "Completed"
    assert len(_executions(executions)) == 1  # never executed again
    assert name == "Crashed" and isinstance(data, UpstreamLost)
    assert "the value of task run 'make-0'" in message
    assert "was lost with its Dask worker tcp://" in message
    assert "never run again" in error


def test_where_dask_would_reschedule_a_killed_attempt_it_still_runs_once(
    whole: distributed.Client, tmp_path: Path
) -> None:
    """A cluster passed in may let Dask re-run tasks whose worker died (allowed-failures > 0,
    Dask's default is 3): the guard turns Dask's rerun into a `WorkerLost`, so the attempt
    still ran once and headwater's retries decide."""
    executions = tmp_path / "executions"

    @task
    def dies() -> None:
        _count(executions)
        os.kill(os.getpid(), signal.SIGKILL)

    @flow(task_runner=DaskTaskRunner(whole))
    def rescheduled() -> Any:
        return _final(dies.submit())

    whole.run_on_scheduler(_set_allowed_failures, 3)
    try:
        name, message, error = rescheduled()
    finally:
        whole.run_on_scheduler(_set_allowed_failures, 0)
    assert len(_executions(executions)) == 1
    assert name == "Crashed" and isinstance(error, WorkerLost)
    assert "rescheduled by Dask, not re-run" in message


def _set_allowed_failures(count: int, dask_scheduler: Any) -> None:
    dask_scheduler.allowed_failures = count


@task
def make_lock() -> threading.Lock:
    return threading.Lock()


@task
def lock_type(lock: Any) -> str:
    return type(lock).__name__


def test_a_value_that_cannot_leave_its_worker_fails_what_needs_it_elsewhere_and_never_hangs(
    whole: distributed.Client,
) -> None:
    first, second = sorted(whole.scheduler_info()["workers"])

    @flow(task_runner=DaskTaskRunner(whole))
    def unshippable() -> tuple[str, Any, Any, int]:
        with dask.annotate(workers=[first], allow_other_workers=False):
            made = make_lock.submit()
            made.wait()
        with dask.annotate(workers=[second], allow_other_workers=False):
            elsewhere = lock_type.submit(made)  # its value must travel: it cannot
            elsewhere.wait(60)
        with pytest.raises(ShippingError, match=r"'make_lock-0'.*a _thread\.lock"):
            made.result()
        return made.state.name, elsewhere.done(), _final(elsewhere), identity.submit(5).result()

    made, done, (name, message, error), rest = unshippable()
    assert done and made == "Completed"  # it did complete, on its worker
    assert name == "Failed" and isinstance(error, ShippingError)
    assert "'make_lock-0'" in message and "(a _thread.lock)" in message
    assert rest == 5  # the rest of the flow goes on


def test_a_run_handed_over_before_its_upstream_died_waits_and_ends_not_ready(
    whole: distributed.Client, tmp_path: Path
) -> None:
    """A dependent run goes to Dask at once, before its upstream finishes (Dask starts it
    after). The upstream's worker dies: the dependent never ran, so it is not an attempt lost
    but a run whose upstream crashed: NotReady, as on every runner, and never executed."""
    started, downstream_runs = tmp_path / "started", tmp_path / "downstream"

    @task
    def dies() -> int:
        started.touch()
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
        return 1

    @task
    def after(value: int) -> int:
        _count(downstream_runs)
        return value + 1

    @flow(task_runner=DaskTaskRunner(whole))
    def chain() -> tuple[tuple[str, str, BaseException | None], tuple[str, str, BaseException | None], bool]:
        upstream = dies.submit()
        downstream = after.submit(upstream)
        handed_over_early = downstream.runner_future is not None and not upstream.done()
        return _final(upstream), _final(downstream), handed_over_early

    (up_name, up_message, _), (name, message, _), early = chain()
    assert early
    assert up_name == "Crashed" and "died" in up_message
    assert name == "NotReady" and "upstream run ended Crashed" in message
    assert _executions(downstream_runs) == []
