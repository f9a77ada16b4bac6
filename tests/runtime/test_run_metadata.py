"""`headwater.runtime.flow_run`, `.task_run` and `.deployment`, read as `prefect.runtime` is:
in a flow's body, in its tasks on worker threads and worker processes, in subflows, in
run-name callables, and outside any run. Real flows, the thread runner and a real spawn process
pool, the real embedded state service (which a worker process reads its flow run from).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from headwater import flow, get_run_context, runtime, tags, task
from headwater.api import StateClient, recorder_target
from headwater.runners import ConcurrentTaskRunner, ProcessPoolTaskRunner
from headwater.runtime import deployment, flow_run, task_run
from headwater.runtime.context import TaskRunContext


def flow_side() -> dict[str, Any]:
    return {
        "id": flow_run.id, "name": flow_run.name, "flow_name": flow_run.flow_name,
        "parameters": flow_run.parameters, "tags": flow_run.tags,
        "parent_flow_run_id": flow_run.parent_flow_run_id,
    }  # fmt: skip


def task_side() -> dict[str, Any]:
    return {
        "id": task_run.id, "name": task_run.name, "task_name": task_run.task_name,
        "parameters": task_run.parameters, "tags": task_run.tags, "run_count": task_run.run_count,
    }  # fmt: skip


@task(tags=["probe"])
def probe(x: int, label: str = "plain") -> dict[str, Any]:
    return {"flow": flow_side(), "task": task_side()}


@flow
def child(n: int) -> dict[str, Any]:
    return {"flow": flow_side(), "task": task_side(), "probe": probe(n, label="in-child")}


@task
def calls_a_subflow() -> dict[str, Any]:
    return {"task": task_side(), "child": child(7)}


def test_outside_any_run_everything_reads_as_prefects_empty_values() -> None:
    assert flow_side() == {
        "id": None, "name": None, "flow_name": None, "parameters": {}, "tags": [], "parent_flow_run_id": None,
    }  # fmt: skip
    assert task_side() == {
        "id": None, "name": None, "task_name": None, "parameters": {}, "tags": [], "run_count": 0,
    }  # fmt: skip
    scheduled = flow_run.scheduled_start_time
    assert scheduled.tzinfo is timezone.utc
    assert abs((datetime.now(timezone.utc) - scheduled).total_seconds()) < 5
    assert (deployment.id, deployment.flow_run_id, deployment.name, deployment.version) == (None,) * 4
    assert deployment.parameters == {}
    assert runtime.flow_run is flow_run  # `from headwater import runtime` works as Prefect's does
    assert sorted(dir(task_run)) == ["id", "name", "parameters", "run_count", "tags", "task_name"]


def test_flow_body_worker_threads_subflows_and_tasks_each_read_their_own_run() -> None:
    @flow(task_runner=ConcurrentTaskRunner(max_workers=4))
    def pipeline(n: int, tag: str) -> dict[str, Any]:
        first = probe.submit(n)
        second = probe.submit(first, label="downstream")  # an upstream future as an argument
        run = get_run_context().flow_run
        return {
            "body": {"flow": flow_side(), "task": task_side()},
            "run": (str(run.id), run.name, run.history[0].timestamp),
            "futures": [(str(f.task_run.id), f.task_run.name) for f in (first, second)],
            "first": first.result(), "second": second.result(),
            "child": child(n + 1), "through_a_task": calls_a_subflow(),
        }  # fmt: skip

    before = datetime.now(timezone.utc)
    with tags("nightly"):
        out = pipeline(3, tag="t")
    run_id, run_name, created = out["run"]
    here = {
        "id": run_id, "name": run_name, "flow_name": "pipeline",
        "parameters": {"n": 3, "tag": "t"}, "tags": ["nightly"], "parent_flow_run_id": None,
    }  # fmt: skip
    assert out["body"] == {"flow": here, "task": task_side()}  # a flow's body is in no task

    (first_id, first_name), (second_id, _) = out["futures"]
    assert out["first"] == {
        "flow": here,
        "task": {
            "id": first_id, "name": first_name, "task_name": "probe",
            "parameters": {"x": 3}, "tags": ["probe", "nightly"], "run_count": 1,
        },
    }  # fmt: skip
    # The upstream's result, not its future, is what the downstream run was called with.
    assert out["second"]["task"]["parameters"] == {"x": out["first"], "label": "downstream"}
    assert out["second"]["task"]["id"] == second_id

    sub = out["child"]
    assert sub["flow"]["flow_name"] == "child" and sub["flow"]["parameters"] == {"n": 4}
    assert sub["flow"]["parent_flow_run_id"] == run_id and sub["flow"]["tags"] == ["nightly"]
    assert sub["task"]["id"] is None  # the subflow's body is in no task
    assert sub["probe"]["flow"] == sub["flow"]
    assert sub["probe"]["task"]["parameters"] == {"x": 4, "label": "in-child"}

    # A subflow called inside a task: its body reads the subflow, not the task around it.
    through = out["through_a_task"]
    assert through["task"]["task_name"] == "calls_a_subflow"
    assert through["child"]["flow"]["parent_flow_run_id"] == run_id
    assert through["child"]["task"]["id"] is None
    assert through["child"]["probe"]["flow"]["id"] == through["child"]["flow"]["id"]

    assert before <= created <= flow_run.scheduled_start_time  # the run's creation; now, outside


def test_run_count_counts_attempts_and_get_run_context_in_a_subflow_in_a_task_is_the_subflow() -> None:
    attempts: list[int] = []

    @task(retries=2)
    def flaky() -> int:
        attempts.append(task_run.run_count)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return task_run.run_count

    def innermost_run() -> str:
        ctx = get_run_context()
        return ctx.task_run.task_name if isinstance(ctx, TaskRunContext) else ctx.flow.name

    @flow
    def inner() -> str:
        return innermost_run()

    @task
    def wraps_inner() -> tuple[str, str]:
        return innermost_run(), inner()

    @flow
    def outer() -> tuple[int, tuple[str, str]]:
        return flaky(), wraps_inner()

    count, (in_task, in_subflow) = outer()
    assert (count, attempts) == (3, [1, 2, 3])
    assert in_task == "wraps_inner"
    assert in_subflow == "inner"  # the subflow's body, not the task it was called in


def test_run_name_callables_read_the_parameters_of_the_run_they_name() -> None:
    @task(task_run_name=lambda: f"load-{task_run.parameters['table']}")
    def load(table: str) -> str:
        return str(task_run.name)

    @flow(flow_run_name=lambda: f"etl-{flow_run.parameters['day']}")
    def etl(day: str) -> tuple[str, str, str]:
        return str(flow_run.name), load("orders"), str(flow_run.id)

    flow_name, task_name, run_id = etl("2024-06-01")
    assert (flow_name, task_name) == ("etl-2024-06-01", "load-orders")
    url, token, _ = recorder_target()
    with StateClient(url, token=token) as client:
        assert client.read_flow_run(run_id).name == "etl-2024-06-01"
        assert [t.name for t in client.list_task_runs(UUID(run_id))] == ["load-orders"]


def test_a_task_in_a_worker_process_reads_its_flow_run_from_the_state_service() -> None:
    @task(tags=["remote"])
    def elsewhere(x: int) -> dict[str, Any]:
        return {"flow": flow_side(), "task": task_side(), "pid": os.getpid()}

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def spread(n: int) -> tuple[str, str, dict[str, Any]]:
        run = get_run_context().flow_run
        return str(run.id), run.name, elsewhere.submit(n).result(timeout=60)

    with tags("batch"):
        run_id, run_name, out = spread(5)
    assert out["pid"] != os.getpid()
    assert out["flow"] == {
        "id": run_id, "name": run_name, "flow_name": "spread", "parameters": {"n": 5},
        "tags": ["batch"], "parent_flow_run_id": None,
    }  # fmt: skip
    assert out["task"]["task_name"] == "elsewhere" and out["task"]["parameters"] == {"x": 5}
    assert out["task"]["tags"] == ["remote", "batch"] and out["task"]["run_count"] == 1
