"""One contract, every runner: the same suite runs against each `TaskRunner`.

A new runner joins by adding a factory to RUNNERS (with `pytest.importorskip` for its
optional dependency); nothing else here changes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater import allow_failure, flow, task, unmapped
from headwater.runners import (
    ConcurrentTaskRunner,
    DaskTaskRunner,
    ProcessPoolTaskRunner,
    RayTaskRunner,
    SequentialTaskRunner,
    TaskCall,
    TaskRunner,
)
from headwater.runners.base import RunnerFuture
from headwater.errors import BrokenRunner, ShippingError, UpstreamFailed
from tests.runners.dask_cluster import shared_dask_address

RUNNERS: dict[str, Callable[[], TaskRunner]] = {
    "sequential": SequentialTaskRunner,
    "concurrent": lambda: ConcurrentTaskRunner(max_workers=4),
    "processes": lambda: ProcessPoolTaskRunner(max_workers=2),
    "dask": lambda: DaskTaskRunner(shared_dask_address()),
    "ray": lambda: RayTaskRunner(),  # on the session's shared Ray (`ray_session`)
}


@pytest.fixture(params=sorted(RUNNERS))
def runner(request: pytest.FixtureRequest) -> TaskRunner:
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return RUNNERS[request.param]()


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task
def boom(message: str = "boom") -> int:
    raise ValueError(message)


@task
def collect(*items: Any) -> list[Any]:
    return list(items)


def _entry(payload: Any, upstream: tuple[Any, ...]) -> Any:
    return (payload, upstream)


def test_a_runner_returns_a_runner_future_with_the_entrypoint_result(runner: TaskRunner) -> None:
    with runner:
        run_id = uuid.uuid4()
        future = runner.submit(TaskCall(run_id, _entry, "payload"))
        assert isinstance(future, RunnerFuture)
        assert future.run_id == run_id
        assert future.result(timeout=5) == ("payload", ())
        assert future.done()


def test_upstream_runner_futures_arrive_as_values(runner: TaskRunner) -> None:
    with runner:
        first = runner.submit(TaskCall(uuid.uuid4(), _entry, 1))
        first.result(timeout=5)
        second = runner.submit(TaskCall(uuid.uuid4(), _entry, 2, (first,)))
        assert second.result(timeout=5) == (2, ((1, ()),))


def test_entrypoint_exceptions_reach_the_future(runner: TaskRunner) -> None:
    def explode(payload: Any, upstream: tuple[Any, ...]) -> Any:
        raise RuntimeError(payload)

    with runner:
        future = runner.submit(TaskCall(uuid.uuid4(), explode, "kaput"))
        with pytest.raises(RuntimeError, match="kaput"):
            future.result(timeout=5)


def test_duplicate_gives_an_independent_runner_of_the_same_kind(runner: TaskRunner) -> None:
    copy = runner.duplicate()
    assert type(copy) is type(runner) and copy is not runner


def test_submit_map_and_dependencies(runner: TaskRunner) -> None:
    @flow(task_runner=runner)
    def pipeline(n: int) -> tuple[int, list[int], list[int]]:
        first = add.submit(1)
        second = add.submit(first, y=first)
        mapped = add.map(range(n), y=unmapped(10))
        chained = add.map(mapped)
        return second.result(), mapped.result(), chained.result()

    assert pipeline(3) == (4, [10, 11, 12], [11, 12, 13])


def test_futures_nested_in_collections_are_dependencies(runner: TaskRunner) -> None:
    @flow(task_runner=runner)
    def nested() -> list[Any]:
        a, b = add.submit(1), add.submit(2)
        return collect.submit([a, {"b": b}], (a,)).result()

    assert nested() == [[2, {"b": 3}], (2,)]


def test_failed_upstream_leaves_downstream_not_ready_unless_allowed(runner: TaskRunner) -> None:
    @task
    def describe(value: Any) -> str:
        return f"got {type(value).__name__}"

    @flow(task_runner=runner)
    def failing() -> tuple[Any, ...]:
        bad = boom.submit()
        skipped = add.submit(bad)
        tolerant = describe.submit(allow_failure(bad))
        waits = add.submit(1, wait_for=[bad])
        with pytest.raises(UpstreamFailed, match="upstream run ended Failed"):
            skipped.result()
        waits.wait()
        return (skipped.state.type.value, skipped.state.name), tolerant.result(), waits.state.name

    skipped, tolerant, waited = failing()
    assert skipped == ("PENDING", "NotReady")
    assert waited == "NotReady"
    assert tolerant == "got ValueError"


def test_a_failed_task_that_is_not_returned_does_not_fail_the_flow(runner: TaskRunner) -> None:
    @flow(task_runner=runner)
    def tolerant() -> int:
        boom.submit()
        return 7

    assert tolerant() == 7


def test_every_submitted_task_finishes_before_the_flow_does(runner: TaskRunner, tmp_path: Path) -> None:
    @task
    def slow(i: int) -> None:  # leaves a file: the runner may be in another process
        time.sleep(0.01)
        (tmp_path / str(i)).touch()

    @flow(task_runner=runner)
    def fire_and_forget() -> None:
        for i in range(5):
            slow.submit(i)

    fire_and_forget()
    assert sorted(int(p.name) for p in tmp_path.iterdir()) == [0, 1, 2, 3, 4]


def test_a_runner_that_was_shut_down_refuses_work() -> None:
    runner = ConcurrentTaskRunner(max_workers=1)
    runner.start()
    runner.shutdown()
    with pytest.raises(BrokenRunner, match="not running"):
        runner.submit(TaskCall(uuid.uuid4(), _entry, None))


def test_concurrent_runner_runs_tasks_at_the_same_time() -> None:
    barrier = threading.Barrier(3, timeout=5)

    @task
    def meet() -> bool:
        barrier.wait()
        return True

    @flow(task_runner=ConcurrentTaskRunner(max_workers=3))
    def together() -> list[bool]:
        return [f.result() for f in [meet.submit() for _ in range(3)]]

    assert together() == [True, True, True]


def test_a_queued_call_can_be_cancelled_and_waiting_times_out() -> None:
    release = threading.Event()

    def block(payload: Any, upstream: tuple[Any, ...]) -> Any:
        release.wait(5)
        return payload

    with ConcurrentTaskRunner(max_workers=1) as runner:
        running = runner.submit(TaskCall(uuid.uuid4(), block, "first"))
        queued = runner.submit(TaskCall(uuid.uuid4(), block, "second"))
        with pytest.raises(TimeoutError):
            running.result(timeout=0.05)
        assert queued.cancel() and queued.done()
        assert not running.cancel()  # already started
        seen: list[Any] = []
        queued.add_done_callback(seen.append)
        release.set()
        assert running.result(timeout=5) == "first"
        assert seen == [queued]
        with pytest.raises(Exception, match="cancelled"):
            queued.result()


def test_retries_are_new_attempts_and_the_flow_sees_the_whole_history(runner: TaskRunner, tmp_path: Path) -> None:
    @task(retries=2)
    def flaky() -> str:  # the attempt count lives in a file: the runner may be another process
        marker = tmp_path / "attempts"
        attempts = int(marker.read_text()) + 1 if marker.exists() else 1
        marker.write_text(str(attempts))
        if attempts < 3:
            raise RuntimeError(f"attempt {attempts}")
        return f"ok after {attempts}"

    @flow(task_runner=runner)
    def retrying() -> Any:
        future = flaky.submit()
        value = future.result()
        run = future.task_run
        return value, run.run_count, run.end_time is not None, [s.name for s in run.history]

    value, run_count, ended, history = retrying()
    assert (value, run_count, ended) == ("ok after 3", 3, True)
    assert history == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying", "Completed",
    ]  # fmt: skip


ONE_WORKER: dict[str, Callable[[], TaskRunner]] = {
    "sequential": SequentialTaskRunner,
    "concurrent": lambda: ConcurrentTaskRunner(max_workers=1),
    "processes": lambda: ProcessPoolTaskRunner(max_workers=1),
    "dask": lambda: DaskTaskRunner(  # its own one-thread cluster; threads start fastest
        cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "processes": False, "dashboard_address": ":0"}
    ),
}


@pytest.mark.parametrize("kind", sorted(ONE_WORKER))
def test_a_retry_delay_does_not_hold_a_worker(kind: str, tmp_path: Path) -> None:
    @task(retries=1, retry_delay_seconds=1.0)
    def flaky() -> float:
        marker = tmp_path / "failed-once"
        if not marker.exists():
            marker.touch()
            raise RuntimeError("first attempt")
        return time.monotonic()

    @task
    def quick() -> float:
        return time.monotonic()

    @flow(task_runner=ONE_WORKER[kind]())
    def both() -> tuple[float, float]:
        slow = flaky.submit()
        while not (tmp_path / "failed-once").exists():
            time.sleep(0.01)
        fast = quick.submit()  # the only worker must be free while `slow` waits to retry
        return slow.result(), fast.result()

    retried_at, quick_at = both()
    assert quick_at < retried_at  # the quick task did not wait behind the retry delay


def test_the_flow_record_of_each_task_run_ends_in_its_final_state(runner: TaskRunner) -> None:
    @flow(task_runner=runner)
    def mixed() -> list[Any]:
        futures = [add.submit(1), boom.submit()]
        for future in futures:
            future.wait()
        return [(f.task_run.state.name, f.task_run.run_count) for f in futures]

    assert mixed() == [("Completed", 1), ("Failed", 1)]


@task
def crash() -> int:
    raise SystemExit(3)  # not a task failure: the attempt is lost, the run ends Crashed


def test_a_crashed_upstream_leaves_its_downstream_not_ready(runner: TaskRunner) -> None:
    @flow(task_runner=runner)
    def crashing() -> tuple[str, str]:
        crashed = crash.submit()
        downstream = add.submit(crashed)
        downstream.wait()
        return crashed.state.name, downstream.state.name

    assert crashing() == ("Crashed", "NotReady")


# Runners whose calls leave this process, pickled.
SHIPPING = ("dask", "processes", "ray")


@pytest.mark.parametrize("kind", SHIPPING)
def test_an_argument_that_does_not_pickle_fails_that_run_naming_it_before_anything_is_sent(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "ray":
        request.getfixturevalue("ray_session")
    executions = tmp_path / "executions"

    @task
    def counted(x: Any, y: int = 1) -> int:
        executions.touch()
        return 0

    @flow(task_runner=RUNNERS[kind]())
    def shipping() -> tuple[str, Any, str, int]:
        bad = counted.submit(threading.Lock())
        good = add.submit(4)
        bad.wait()
        return bad.state.name, bad.exception(), str(bad.state.message), good.result()

    name, error, message, good = shipping()
    assert name == "Failed" and isinstance(error, ShippingError)
    assert "cannot be sent to" in message and "its argument 'x' (a _thread.lock)" in message
    assert not executions.exists()  # refused before anything was sent
    assert good == 5  # the rest of the flow goes on


@pytest.mark.parametrize("kind", SHIPPING)
def test_a_value_that_does_not_pickle_stays_where_it_was_made_and_says_why_when_asked_for(
    kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "ray":
        request.getfixturevalue("ray_session")

    @task
    def make_lock() -> threading.Lock:
        return threading.Lock()

    @flow(task_runner=RUNNERS[kind]())
    def unshippable() -> tuple[str, int]:
        made = make_lock.submit()
        made.wait()
        with pytest.raises(ShippingError, match=r"'make_lock-0'.*\(a _thread\.lock\) cannot leave"):
            made.result()
        return made.state.name, add.submit(4).result()

    assert unshippable() == ("Completed", 5)  # it completed where it ran; the flow goes on
