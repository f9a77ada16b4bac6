"""A tag limit holds across Dask worker processes: the flow's process takes each run's slot
before handing it to the cluster, so the workers never run more than the limit at once."""

from __future__ import annotations

from pathlib import Path

from headwater import flow
from headwater.runners import DaskTaskRunner
from tests.runners.dask_cluster import shared_dask_address
from tests.runtime.test_slots import active, intervals_in, limit, overlap, timed


def test_a_limit_holds_across_dask_worker_processes(tmp_path: Path) -> None:
    name, log = limit(3), tmp_path / "log"

    @flow(task_runner=DaskTaskRunner(shared_dask_address()))
    def run() -> None:
        timed.with_options(tags=[name]).map(str(log), [0.05] * 50).wait()

    run()
    spans = intervals_in(log)
    assert len(spans) == 50 and overlap(spans) <= 3
    assert active(name) == 0
