"""One cache for a whole Dask cluster: a value computed on one `dask worker` process is a hit
on another, though each has a `HEADWATER_HOME` of its own (as on separate machines), because
both reach the cache through the state service the flow records into.

`squares` is keyed by a policy, so the flow's process answers its hit before the cluster sees
it; `total` is keyed by a `cache_key_fn`, which sees values, so its hit is answered on the
worker, through the service's store. Where each hit was answered shows in its run's record:
the process that recorded it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import distributed

from headwater import flow, task
from headwater.api import StateClient, recorder_target
from headwater.cache import INPUTS, TASK_SOURCE, task_input_hash
from headwater.runners import DaskTaskRunner

from .cluster_processes import Processes
from .side_effects import count, executions

ROOT = Path(__file__).resolve().parents[2]


@task(cache_policy=TASK_SOURCE + INPUTS)
def squares(log: str, n: int) -> list[int]:
    count(Path(log))
    return [i * i for i in range(n)]


@task(cache_key_fn=task_input_hash)
def total(log: str, values: list[int]) -> int:
    count(Path(log + ".total"))
    return sum(values)


def test_a_value_computed_on_one_worker_is_a_hit_on_another_with_its_own_home(
    tmp_path: Path, processes: Processes
) -> None:
    _, address = processes.dask_scheduler(tmp_path / "scheduler.log")
    for name in ("worker-a", "worker-b"):
        home = tmp_path / f"home-{name}"
        env = {**os.environ, "HEADWATER_HOME": str(home), "PYTHONPATH": str(ROOT)}
        processes.dask_worker(address, name, tmp_path / f"{name}.log", env=env, cwd=ROOT)
    with distributed.Client(address) as client:
        client.wait_for_workers(2, timeout=60)
        pids = {name: pid for name, pid in client.run(os.getpid).items()}
        names = {address: info["name"] for address, info in client.scheduler_info()["workers"].items()}
        pids = {names[address]: pid for address, pid in pids.items()}
    log = str(tmp_path / "runs")

    @flow(task_runner=DaskTaskRunner(address=address))
    def on(worker: str) -> Any:
        pinned = {"runner_options": {"workers": [worker]}}
        values = squares.with_options(**pinned).submit(log, 1000)
        result = total.with_options(**pinned).submit(log, values)
        states = (result.result(), values.wait() or values.state.name, result.state.name)
        return (*states, values.task_run.id, result.task_run.id)

    assert on("worker-a")[:3] == (332_833_500, "Completed", "Completed")
    assert executions(Path(log)) == [pids["worker-a"]]
    value, squares_state, total_state, squares_id, total_id = on("worker-b")
    assert (value, squares_state, total_state) == (332_833_500, "Cached", "Cached")
    assert executions(Path(log)) == [pids["worker-a"]]  # worker-b ran neither task
    assert executions(Path(log + ".total")) == [pids["worker-a"]]
    url, token, _ = recorder_target()
    with StateClient(url, token=token) as client:
        assert client.read_task_run(squares_id).pid == os.getpid()  # answered in the flow
        assert client.read_task_run(total_id).pid == pids["worker-b"]  # answered on worker-b
    assert not (tmp_path / "home-worker-b" / "cache" / "store.id").exists()  # nothing of its own

