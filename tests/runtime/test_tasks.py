"""Tasks: calling, binding, mapping, retries, timeouts, hooks and names, on real threads."""

from __future__ import annotations

import time
from typing import Any

import pytest

from headwater import (
    MappingLengthMismatch,
    ParameterBindError,
    RunTimedOut,
    State,
    flow,
    task,
    unmapped,
)
from headwater.runners import ConcurrentTaskRunner, SequentialTaskRunner
from headwater.runtime.tasks import exponential_backoff


@task
def double(x: int) -> int:
    return 2 * x


def test_calling_a_task_returns_its_value_in_and_outside_a_flow() -> None:
    assert double(4) == 8

    @flow
    def inside() -> int:
        return double(5)

    assert inside() == 10


def test_a_task_keeps_its_function_identity() -> None:
    assert double.__name__ == "double" and double.name == "double"
    assert double.fn(3) == 6


def test_return_state_gives_the_final_state() -> None:
    state = double(2, return_state=True)
    assert isinstance(state, State) and state.is_completed() and state.result() == 4


def test_submit_outside_a_flow_runs_in_the_background() -> None:
    assert double.submit(21).result(timeout=5) == 42


def test_bad_arguments_fail_at_submit_with_the_signature_named() -> None:
    with pytest.raises(ParameterBindError, match=r"double\(x: 'int'\) -> 'int': too many positional"):
        double.submit(1, 2)
    with pytest.raises(ParameterBindError):
        double.submit(y=1)
    with pytest.raises(TypeError):  # ParameterBindError is a TypeError
        double()


def test_map_lengths_must_match_and_the_error_names_both() -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(MappingLengthMismatch, match=r"argument 1 has 3, 'y' has 2"):
        add.map([1, 2, 3], y=[1, 2])
    assert add.map([1, 2], y=unmapped(10)).result() == [11, 12]
    assert add.map([1, 2], 5).result() == [6, 7]


def test_map_over_a_future_maps_over_its_result() -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @flow
    def pipeline() -> list[int]:
        return double.map(numbers.submit()).result()

    assert pipeline() == [2, 4, 6]


def test_retries_with_a_delay_list_then_success() -> None:
    attempts: list[float] = []

    @task(retries=3, retry_delay_seconds=[0.01, 0.02])
    def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("not yet")
        return "ok"

    state = flaky(return_state=True)
    assert state.result() == "ok" and len(attempts) == 3
    assert attempts[2] - attempts[1] >= 0.02 - 0.005


def test_retry_history_walks_awaiting_retry_and_retrying() -> None:
    runs: list[Any] = []

    @task(retries=1, on_completion=[lambda t, run, s: runs.append(run)])
    def once_flaky() -> int:
        if not runs and len(once_flaky_calls) == 0:
            once_flaky_calls.append(1)
            raise RuntimeError("first")
        return 1

    once_flaky_calls: list[int] = []
    once_flaky()
    names = [s.name for s in runs[0].history]
    assert names == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert runs[0].run_count == 2


def test_retry_condition_can_refuse_a_retry() -> None:
    calls: list[int] = []

    @task(retries=5, retry_condition_fn=lambda t, run, state: not isinstance(state.data, KeyError))
    def picky() -> None:
        calls.append(1)
        raise KeyError("fatal")

    with pytest.raises(KeyError):
        picky()
    assert len(calls) == 1


def test_callable_retry_delay_and_exponential_backoff() -> None:
    assert exponential_backoff(2)(3) == [2, 4, 8]
    delayed = task(retries=3, retry_delay_seconds=exponential_backoff(0.5))(lambda: None)
    assert [delayed.retry_delay_for(i) for i in range(4)] == [0.5, 1.0, 2.0, 2.0]
    jittery = task(retry_delay_seconds=1, retry_jitter_factor=0.5)(lambda: None)
    assert all(1 <= jittery.retry_delay_for(0) <= 1.5 for _ in range(20))


def test_a_sync_timeout_marks_the_run_timed_out_on_time_and_interrupts_python_code() -> None:
    progress: list[int] = []

    @task(timeout_seconds=0.2)
    def spin() -> None:
        while True:  # pure Python: the injected TimeoutError stops it
            progress.append(1)
            time.sleep(0.001)

    started = time.monotonic()
    state = spin(return_state=True)
    elapsed = time.monotonic() - started
    assert (state.type.value, state.name) == ("FAILED", "TimedOut")
    assert isinstance(state.data, RunTimedOut)
    assert 0.2 <= elapsed < 1.0
    time.sleep(0.1)
    count = len(progress)
    time.sleep(0.1)
    assert len(progress) == count, "the timed-out function kept running"


def test_hooks_receive_task_run_and_state_and_a_broken_hook_changes_nothing() -> None:
    seen: list[tuple[str, str]] = []

    def record(kind: str):
        return lambda t, run, state: seen.append((kind, f"{t.name}:{state.name}"))

    def broken(t: Any, run: Any, state: Any) -> None:
        raise RuntimeError("hook bug")

    @task(on_running=[record("running")], on_completion=[broken, record("done")])
    def fine() -> int:
        return 1

    @task(on_failure=[record("failed")])
    def bad() -> None:
        raise ValueError("x")

    assert fine() == 1
    with pytest.raises(ValueError):
        bad()
    assert seen == [("running", "fine:Running"), ("done", "fine:Completed"), ("failed", "bad:Failed")]


def test_task_run_names_from_template_callable_or_counter() -> None:
    names: list[str] = []
    keep = [lambda t, run, s: names.append(run.name)]

    @task(task_run_name="sum-{x}-{y}", on_completion=keep)
    def templated(x: int, y: int) -> int:
        return x + y

    @task(task_run_name=lambda: "fixed", on_completion=keep)
    def called() -> None: ...

    @task(on_completion=keep)
    def counted() -> None: ...

    @flow(task_runner=SequentialTaskRunner())
    def naming() -> None:
        templated(1, 2)
        called()
        counted()
        counted()

    naming()
    assert names == ["sum-1-2", "fixed", "counted-0", "counted-1"]


def test_with_options_returns_a_changed_copy() -> None:
    retried = double.with_options(retries=2, name="double-again")
    assert (retried.retries, retried.name, double.retries) == (2, "double-again", 0)
    with pytest.raises(TypeError, match="unknown task options"):
        double.with_options(retires=2)


def test_tags_and_lineage_are_on_the_task_run() -> None:
    runs: dict[str, Any] = {}

    @task(tags=["warehouse"], on_completion=[lambda t, run, s: runs.setdefault(run.name, run)])
    def combine(left: int, right: int) -> int:
        return left + right

    @flow(task_runner=ConcurrentTaskRunner())
    def lineage() -> int:
        a = double.submit(1)
        b = double.submit(2)
        return combine.submit(a, right=b).result()

    assert lineage() == 6
    run = runs["combine-0"]
    assert run.tags == ("warehouse",)
    assert set(run.upstream) == {"left", "right"}
