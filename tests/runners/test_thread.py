"""The thread pool's own guarantees, beyond the shared runner contract: its futures and workers."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from headwater.runners import ConcurrentTaskRunner, TaskCall
from headwater.runners._thread import PoolFuture


def _echo(payload: Any, upstream: tuple[Any, ...]) -> Any:
    return payload


def _raise(future: object) -> None:
    raise RuntimeError("callback broke")


def test_a_raising_done_callback_is_logged_and_the_worker_keeps_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One worker: if a callback's exception escaped into it, that worker would die while the
    # pool still counted it, and nothing queued after would ever run.
    release = threading.Event()
    seen: list[Any] = []

    def gated(payload: Any, upstream: tuple[Any, ...]) -> Any:
        release.wait(5)
        return payload

    with ConcurrentTaskRunner(max_workers=1) as runner:
        first = runner.submit(TaskCall(uuid.uuid4(), gated, 1))
        first.add_done_callback(_raise)  # runs on the worker, as `first` is not done yet
        first.add_done_callback(seen.append)
        release.set()
        second = runner.submit(TaskCall(uuid.uuid4(), _echo, 2))
        assert second.result(timeout=5) == 2
    assert first.result() == 1
    assert seen == [first]  # the callback after the raising one still ran
    assert "exception calling callback" in caplog.text
    assert any(r.name.startswith("headwater") and r.exc_info for r in caplog.records)


def test_a_raising_callback_added_to_a_done_future_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ConcurrentTaskRunner(max_workers=1) as runner:
        future = runner.submit(TaskCall(uuid.uuid4(), _echo, 1))
        assert future.result(timeout=5) == 1
        with caplog.at_level(logging.ERROR, logger="headwater"):
            future.add_done_callback(_raise)
    assert "exception calling callback" in caplog.text


def test_cancel_and_start_never_both_win() -> None:
    # A worker calls start() on a queued future while a shutdown or a flow's cancellation may
    # call cancel(): exactly one may win, or a run reported cancelled still executes. Two
    # threads sweep the same fresh futures from a barrier, one cancelling, one starting, so
    # they meet on many futures at once. A tiny switch interval makes the interpreter switch
    # threads every few microseconds, inside any window cancel() leaves between its check and
    # its transition: a non-atomic cancel() lost dozens of races a second here, even on a
    # loaded 2-core machine.
    batch, deadline = 1000, time.monotonic() + 1.0
    both = played = 0
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        while time.monotonic() < deadline:
            futures = [PoolFuture(i) for i in range(batch)]
            cancelled, started = [False] * batch, [False] * batch
            barrier = threading.Barrier(2, timeout=10)

            def cancel_all() -> None:
                barrier.wait()
                for i, future in enumerate(futures):
                    cancelled[i] = future.cancel()

            def start_all() -> None:
                barrier.wait()
                for i, future in enumerate(futures):
                    started[i] = future.start()

            threads = [threading.Thread(target=f, daemon=True) for f in (cancel_all, start_all)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            both += sum(c and s for c, s in zip(cancelled, started))
            assert all(c or s for c, s in zip(cancelled, started))  # and one always won
            played += batch
    finally:
        sys.setswitchinterval(previous)
    assert not both, f"{both} of {played} futures were both cancelled and started"


def test_a_callback_added_while_its_future_finishes_runs_exactly_once() -> None:
    # The flow's thread adds its callback to a future a worker may be finishing that very
    # moment, with no lock between them (`PoolFuture`'s docstring). With the interpreter
    # switching threads every few microseconds, the two meet inside every window the
    # protocol has: a lost callback would hang a run's flow, a doubled one end it twice.
    batch, deadline = 1000, time.monotonic() + 1.0
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        while time.monotonic() < deadline:
            futures = [PoolFuture(i) for i in range(batch)]
            calls = [0] * batch
            barrier = threading.Barrier(2, timeout=10)

            def finish_all() -> None:
                barrier.wait()
                for future in futures:
                    assert future.start()
                    future._finish(future.run_id, None)

            def add_all() -> None:
                barrier.wait()
                for i, future in enumerate(futures):
                    future.add_done_callback(lambda f, i=i: calls.__setitem__(i, calls[i] + 1))

            threads = [threading.Thread(target=f, daemon=True) for f in (finish_all, add_all)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            assert calls == [1] * batch, f"callbacks run {sorted(set(calls))} times"
    finally:
        sys.setswitchinterval(previous)
