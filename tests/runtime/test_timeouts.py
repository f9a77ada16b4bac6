"""`timeout_seconds` on sync calls: the helper thread keeps the caller's pool guarantees."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from headwater import flow, task
from headwater.runners import ConcurrentTaskRunner
from headwater.runners.base import blocking_wait, set_blocking_hook
from headwater.runtime.timeouts import call_with_timeout


def test_the_helper_thread_uses_the_callers_blocking_hook() -> None:
    lent_from: list[str] = []

    @contextmanager
    def hook() -> Iterator[None]:
        lent_from.append(threading.current_thread().name)
        yield

    def waits() -> int:
        with blocking_wait():  # what a task does before blocking on another run
            return 1

    set_blocking_hook(hook)
    try:
        assert call_with_timeout(waits, 5, "waits") == 1
    finally:
        set_blocking_hook(None)
    assert lent_from == ["headwater-timeout-waits"]


@task
def inner(i: int) -> int:
    return i


@task(timeout_seconds=3)
def outer() -> int:
    # Blocks on runs queued behind it in a one-worker pool: only lending the worker lets
    # them run, and the wait happens in the timeout's helper thread.
    return sum(inner.map(range(5)).result())


def test_a_timed_task_waiting_on_mapped_tasks_in_a_one_worker_pool_finishes() -> None:
    @flow(task_runner=ConcurrentTaskRunner(max_workers=1))
    def fan_out() -> int:
        return outer.submit().result()

    assert fan_out() == 10
