"""Lines a task logs on a Dask or Ray worker process reach the flow run's logs in the state
service, with the task run's id, through the service the task names."""

from __future__ import annotations

import os
from typing import Any

import pytest

from headwater import flow, get_run_logger, task
from headwater.runners import DaskTaskRunner, RayTaskRunner
from tests.runners.dask_cluster import shared_dask_address
from tests.runtime.test_log_capture import _run_logs_at_info as _run_logs_at_info  # autouse, here too
from tests.runtime.test_log_capture import lines_of


@task
def says_where(i: int) -> int:
    get_run_logger().info("worker line %d from pid %d", i, os.getpid())
    return os.getpid()


def _flow_id() -> Any:
    from headwater.runtime.context import flow_run_var

    return flow_run_var.get().flow_run.id  # type: ignore[union-attr]


def test_dask_worker_lines_reach_the_flow_runs_logs() -> None:
    @flow(task_runner=DaskTaskRunner(shared_dask_address()))
    def run() -> tuple[Any, list[int]]:
        pids = says_where.map(range(4)).result()
        return _flow_id(), pids

    run_id, pids = run()
    assert os.getpid() not in pids
    lines = [line for line in lines_of(run_id, 6) if line.message.startswith("worker line")]
    assert sorted(line.message.split()[2] for line in lines) == ["0", "1", "2", "3"]
    assert all(line.task_run_id is not None for line in lines)


@pytest.mark.usefixtures("ray_session")
def test_ray_worker_lines_reach_the_flow_runs_logs() -> None:
    @flow(task_runner=RayTaskRunner())
    def run() -> tuple[Any, list[int]]:
        pids = says_where.map(range(2)).result()
        return _flow_id(), pids

    run_id, pids = run()
    assert os.getpid() not in pids
    lines = [line for line in lines_of(run_id, 4) if line.message.startswith("worker line")]
    assert len(lines) == 2 and all(line.task_run_id is not None for line in lines)
