"""What a lost attempt means (`headwater.runtime.losses`), as a table: no runner, no cluster.

Each row gives a task's budget (`retries`, `crash_retries`), the error its runner raised, and
the run's attempts and lost attempts so far (this one included when it counts), and checks the
verdict: the state the run ends in, or the delay before it is tried again, and what the
recorded message says."""

from __future__ import annotations

from typing import Any

import pytest

from headwater import task
from headwater.errors import BrokenRunner, ShippingError, UpstreamLost, WorkerLost
from headwater.runtime.losses import counts_as_attempt, judge_lost_attempt
from headwater.runtime.states import StateType

CRASHED, FAILED = StateType.CRASHED, StateType.FAILED
DIED = WorkerLost("the Dask worker tcp://127.0.0.1:4000 (pid 42) running it died (KilledWorker)")


def _fn() -> None:
    return None


def _task(retries: int = 0, crash_retries: int | None = None, delay: Any = 0) -> Any:
    return task(retries=retries, crash_retries=crash_retries, retry_delay_seconds=delay)(_fn)


# (retries, crash_retries, error, attempts, lost) -> (type, retry_delay, words in the message)
ROWS: dict[str, tuple[tuple[int, int | None, BaseException, int, int], tuple[StateType, float | None, str]]] = {
    "no-retries-crashes": ((0, None, DIED, 1, 1), (CRASHED, None, "tcp://127.0.0.1:4000")),
    "first-of-one-retry": ((1, None, DIED, 1, 1), (CRASHED, 0.0, "attempt 1 lost: the Dask worker")),
    "shared-budget-spent": ((1, None, DIED, 2, 1), (CRASHED, None, "pid 42")),
    "every-attempt-died": ((2, None, DIED, 3, 3), (FAILED, None, "every attempt (3 of 3) lost its worker")),
    "two-of-two-died": ((1, None, DIED, 2, 2), (FAILED, None, "every attempt (2 of 2)")),
    # crash_retries: losses have their own budget; `retries` counts failures only
    "own-budget": ((0, 2, DIED, 2, 2), (CRASHED, 0.0, "retry 2 of 2")),
    "own-budget-spent": ((5, 1, DIED, 2, 2), (FAILED, None, "every attempt (2 of 2)")),
    "own-budget-zero": ((3, 0, DIED, 1, 1), (CRASHED, None, "KilledWorker")),
    "own-budget-after-failures": ((1, 1, DIED, 3, 1), (CRASHED, 0.0, "attempt 3 lost")),
    # never retried
    "upstream-lost": ((3, None, UpstreamLost("the value of task run 'a-0' was lost"), 0, 0), (CRASHED, None, "'a-0'")),
    "unshippable": ((3, None, ShippingError("its argument 'x' (a lock) does not pickle"), 0, 0), (FAILED, None, "'x'")),
    "other": ((3, None, BrokenRunner("shut down"), 0, 0), (CRASHED, None, "BrokenRunner: shut down")),
}


@pytest.mark.parametrize(("given", "expected"), list(ROWS.values()), ids=list(ROWS))
def test_verdict(
    given: tuple[int, int | None, BaseException, int, int], expected: tuple[StateType, float | None, str]
) -> None:
    retries, crash_retries, error, attempts, lost = given
    verdict = judge_lost_attempt(_task(retries, crash_retries), error, attempts, lost)
    assert (verdict.type, verdict.retry_delay) == expected[:2]
    assert expected[2] in verdict.reason
    assert verdict.error is error


def test_only_a_worker_death_counts_as_an_attempt() -> None:
    assert counts_as_attempt(DIED)
    assert not any(counts_as_attempt(e) for e in (UpstreamLost("x"), ShippingError("x"), SystemExit(1)))


def test_a_lost_attempt_waits_the_tasks_retry_delay_for_its_retry_number() -> None:
    shared = judge_lost_attempt(_task(retries=3, delay=[1, 2, 4]), DIED, 2, 1)
    own = judge_lost_attempt(_task(retries=3, crash_retries=3, delay=[1, 2, 4]), DIED, 2, 1)
    assert (shared.retry_delay, own.retry_delay) == (2.0, 1.0)
    assert "retry 2 of 3 in 2s" in shared.reason and "retry 1 of 3 in 1s" in own.reason


def test_crash_retries_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="crash_retries"):
        _task(crash_retries=-1)
