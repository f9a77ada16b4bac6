"""The runner interface's shared pieces: `FinishedFuture` and done-callback isolation."""

from __future__ import annotations

import uuid

import pytest

from headwater.runners.base import FinishedFuture


def _raise(future: object) -> None:
    raise RuntimeError("callback broke")


def test_a_finished_future_logs_a_raising_callback_instead_of_raising_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The scheduler adds its completion callback right after submitting: an exception
    # escaping here would surface from `.submit()` and leave the run unaccounted for.
    future = FinishedFuture(uuid.uuid4(), value=1)
    seen: list[object] = []
    future.add_done_callback(_raise)
    future.add_done_callback(seen.append)
    assert seen == [future]
    assert "exception calling callback" in caplog.text
    assert any(r.name.startswith("headwater") and r.exc_info for r in caplog.records)
