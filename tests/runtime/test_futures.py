"""Futures: result/wait/timeouts, callbacks, `wait`, `as_completed`, and memory release."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from typing import Any

import pytest

from headwater import as_completed, flow, task, wait
from headwater.runners import ConcurrentTaskRunner


@task
def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


@task
def fails() -> None:
    raise ValueError("bad")


def test_result_timeout_raise_on_failure_and_callbacks() -> None:
    @flow(task_runner=ConcurrentTaskRunner(max_workers=4))
    def check() -> None:
        slow = sleep_then.submit(0.3, "late")
        with pytest.raises(TimeoutError):
            slow.result(timeout=0.01)
        assert not slow.done() and slow.state.type.value in ("PENDING", "RUNNING")
        called = threading.Event()
        slow.add_done_callback(lambda f: called.set())
        assert slow.result() == "late" and called.wait(1)
        failed = fails.submit()
        assert isinstance(failed.result(raise_on_failure=False), ValueError)
        assert isinstance(failed.exception(), ValueError)
        late: list[Any] = []
        failed.add_done_callback(late.append)  # already done: runs at once
        assert late == [failed]

    check()


def test_wait_and_as_completed() -> None:
    @flow(task_runner=ConcurrentTaskRunner(max_workers=4))
    def check() -> None:
        futures = [sleep_then.submit(d, d) for d in (0.2, 0.0, 0.1)]
        order = [f.result() for f in as_completed(futures, timeout=5)]
        assert order == [0.0, 0.1, 0.2]
        slow = sleep_then.submit(0.5)
        done, not_done = wait([futures[0], slow], timeout=0.05)
        assert done == {futures[0]} and not_done == {slow}
        with pytest.raises(TimeoutError, match="1 of the futures"):
            list(as_completed([slow], timeout=0.01))

    check()


def test_map_returns_a_future_list_with_result_and_wait() -> None:
    @flow
    def mapped() -> list[int]:
        futures = sleep_then.map([0.0] * 3, [1, 2, 3])
        futures.wait()
        assert all(f.done() for f in futures)
        return futures.result()

    assert mapped() == [1, 2, 3]


def test_no_pool_deadlock_when_tasks_wait_on_tasks_inside_the_same_pool() -> None:
    @task
    def leaf(i: int) -> int:
        return i

    @task
    def inner_fan_out(n: int) -> int:
        return sum(leaf.map(range(n)).result())  # blocks a worker on work queued behind it

    @flow(task_runner=ConcurrentTaskRunner(max_workers=2))
    def nested() -> list[int]:
        return inner_fan_out.map([5] * 6).result(timeout=20)

    assert nested() == [10] * 6


def test_blocking_in_a_worker_never_runs_more_than_max_workers_user_tasks_at_once() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    @task
    def measured(_: object) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    @task
    def waiter(_: object) -> None:
        measured.map([None] * 4).wait()

    @flow(task_runner=ConcurrentTaskRunner(max_workers=2))
    def bounded() -> None:
        waiter.map([None] * 3).wait()

    bounded()
    assert peak <= 2


def test_a_finished_result_is_released_once_its_future_is_dropped() -> None:
    class Payload:
        pass

    refs: list[weakref.ref[Any]] = []

    @task
    def make() -> Payload:
        payload = Payload()
        refs.append(weakref.ref(payload))
        return payload

    @flow(task_runner=ConcurrentTaskRunner(max_workers=2))
    def churn() -> None:
        for _ in range(20):
            make.submit().wait()  # the future is dropped right after

        gc.collect()
        alive = sum(r() is not None for r in refs)
        assert alive <= 1, f"{alive} finished results still alive inside the flow"

    churn()


def test_a_raising_done_callback_on_a_task_future_does_not_stop_its_downstream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    @task
    def gated() -> int:
        release.wait(5)
        return 1

    @task
    def plus_one(x: int) -> int:
        return x + 1

    def broken(future: object) -> None:
        raise RuntimeError("callback broke")

    @flow(task_runner=ConcurrentTaskRunner(max_workers=1))
    def pipeline() -> int:
        first = gated.submit()
        first.add_done_callback(broken)  # ahead of the callback that dispatches `second`
        second = plus_one.submit(first)
        release.set()
        return second.result()

    # Submitted, so a regression shows as a timeout here rather than a hung test.
    assert pipeline.submit().result(timeout=10) == 2
    assert "exception calling callback" in caplog.text
