"""The thread pool's own guarantees, beyond the shared runner contract: its futures and workers."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import pytest

from headwater.runners import ConcurrentTaskRunner, TaskCall


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
