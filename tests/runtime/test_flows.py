"""Flows: the final-state rule, parameters, subflows, retries, timeouts, hooks, logging."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from headwater import (
    Completed,
    Failed,
    ParameterBindError,
    ParameterValidationError,
    flow,
    get_run_context,
    get_run_logger,
    task,
)
from headwater.runners import ConcurrentTaskRunner
from headwater.errors import MissingContext


@task
def ok(x: int = 1) -> int:
    return x


@task
def fail(message: str = "nope") -> int:
    raise ValueError(message)


def test_the_returned_value_decides_the_final_state() -> None:
    @flow
    def returns_value() -> int:
        return 3

    @flow
    def returns_failed_future() -> Any:
        return fail.submit()

    @flow
    def returns_futures_in_a_dict() -> Any:
        return {"a": ok.submit(1), "b": [ok.submit(2)]}

    @flow
    def returns_a_state() -> Any:
        return Completed("done", message="custom")

    @flow
    def raises() -> None:
        raise KeyError("missing")

    assert returns_value() == 3
    state = returns_failed_future(return_state=True)
    assert state.is_failed() and isinstance(state.data, ValueError)
    assert returns_futures_in_a_dict() == {"a": 1, "b": [2]}
    assert returns_a_state(return_state=True).message == "custom"
    with pytest.raises(KeyError):
        raises()


def test_a_returned_failed_state_fails_the_flow_with_its_exception() -> None:
    @flow
    def explicit() -> Any:
        return Failed(RuntimeError("told to fail"))

    with pytest.raises(RuntimeError, match="told to fail"):
        explicit()


@dataclass
class Window:
    days: int


def test_parameters_are_validated_and_coerced_by_annotation() -> None:
    @flow
    def typed(n: int, window: Window, tags: list[str] | None = None) -> tuple[Any, ...]:
        return n, window, tags

    assert typed("5", Window(2)) == (5, Window(2), None)
    with pytest.raises(ParameterValidationError, match=r"n: .*not-a-number"):
        typed("not-a-number", Window(1))
    with pytest.raises(ParameterBindError, match="missing a required argument"):
        typed()

    with pytest.raises(ParameterValidationError, match="window"):
        typed(1, {"days": "x"})
    unvalidated = typed.with_options(validate_parameters=False)
    assert unvalidated("5", Window(2))[0] == "5"


def test_annotations_naming_local_classes_are_left_unvalidated() -> None:
    class Local:
        pass

    @flow
    def local(n: int, thing: Local) -> Any:
        return n, thing

    marker = Local()
    assert local("3", marker) == (3, marker)


def test_subflows_are_child_runs_and_submit_runs_them_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)
    parents: list[Any] = []

    @flow
    def child(i: int) -> int:
        parents.append(get_run_context().flow_run.parent_flow_run_id)
        barrier.wait()  # both children must be running at once to pass
        return i * 10

    @flow
    def parent() -> tuple[Any, list[int]]:
        futures = [child.submit(i) for i in range(2)]
        return get_run_context().flow_run.id, [f.result(timeout=5) for f in futures]

    parent_id, values = parent()
    assert values == [0, 10]
    assert parents == [parent_id, parent_id]


def test_flow_retries_rerun_the_body() -> None:
    attempts: list[int] = []

    @flow(retries=2, retry_delay_seconds=0.01)
    def eventually() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("again")
        return len(attempts)

    runs: list[Any] = []
    watched = eventually.with_options(on_completion=[lambda f, run, s: runs.append(run)])
    attempts.clear()
    assert watched() == 3
    names = [s.name for s in runs[0].history]
    assert names == ["Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying", "Completed"]


def test_flow_timeout_ends_timed_out_on_time_without_waiting_for_running_tasks() -> None:
    @task
    def sleepy() -> None:
        time.sleep(1.5)

    @flow(timeout_seconds=0.3, task_runner=ConcurrentTaskRunner(max_workers=2))
    def too_slow() -> None:
        sleepy.submit()
        time.sleep(5)

    started = time.monotonic()
    state = too_slow(return_state=True)
    assert (state.type.value, state.name) == ("FAILED", "TimedOut")
    assert time.monotonic() - started < 1.2


def test_flow_hooks_fire_for_the_final_state() -> None:
    seen: list[str] = []

    def hook(kind: str):
        return lambda f, run, state: seen.append(f"{kind}:{f.name}:{state.name}")

    @flow(on_running=[hook("running")], on_completion=[hook("completed")])
    def good() -> None: ...

    @flow(on_failure=[hook("failure")])
    def bad() -> None:
        raise ValueError("x")

    @flow(on_crashed=[hook("crashed")])
    def interrupted() -> None:
        raise KeyboardInterrupt

    good()
    with pytest.raises(ValueError):
        bad()
    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert seen == ["running:good:Running", "completed:good:Completed", "failure:bad:Failed", "crashed:interrupted:Crashed"]


def test_run_logger_records_carry_run_ids_and_log_prints_routes_print(caplog: pytest.LogCaptureFixture) -> None:
    @task
    def chatty() -> None:
        get_run_logger().info("from the task")
        print("printed in task")

    @flow(log_prints=True)
    def talk() -> Any:
        get_run_logger().info("from the flow")
        chatty()
        return get_run_context().flow_run.id

    with caplog.at_level(logging.INFO, logger="headwater"):
        flow_run_id = talk()
    records = {r.getMessage(): r for r in caplog.records}
    assert records["from the flow"].flow_run_id == flow_run_id
    assert records["from the task"].task_run_id is not None
    assert records["printed in task"].flow_run_id == flow_run_id
    with pytest.raises(MissingContext):
        get_run_logger()


def test_print_outside_log_prints_runs_is_untouched(capsys: pytest.CaptureFixture[str]) -> None:
    @flow(log_prints=False)
    def quiet() -> None:
        print("plain print")

    quiet()
    assert "plain print" in capsys.readouterr().out


def test_a_runner_instance_serves_many_flow_runs() -> None:
    runner = ConcurrentTaskRunner(max_workers=2)

    @flow(task_runner=runner)
    def reuse(n: int) -> int:
        return sum(ok.map(range(n)).result())

    assert [reuse(3), reuse(4)] == [3, 6]
