"""The flow `test_scale_out.py` runs on a cluster it names by address, as a script:

    python scale_out_flow.py dask tcp://127.0.0.1:8786 NOTES_DIR
    python scale_out_flow.py ray 127.0.0.1:6379 NOTES_DIR

with `HEADWATER_API_URL` and `HEADWATER_API_TOKEN` naming a standalone state server. One flow
run: a map, a dependent chain over it, a subflow (on the same cluster) given the map's
values, a task that fails its first attempt and is retried, and one that fails both. Every
task attempt leaves a note in NOTES_DIR (`<task run id>-<attempt>.json`) saying which process
ran it, so the test can hold the recorded pid of each run against where it really ran. The
script prints its flow run's id, its own pid and host and the result as one JSON line, marked
`RESULT ` (a Ray driver also prints its workers' output).

Run as `__main__`, the tasks travel to the workers by value (cloudpickle), so the workers need
nothing of this file on their path.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from headwater import flow, get_run_context, task, unmapped
from headwater.runners import DaskTaskRunner, RayTaskRunner
from headwater.runners.base import TaskRunner

KIND, ADDRESS, NOTES = sys.argv[1:4]
RUNNER: TaskRunner = DaskTaskRunner(ADDRESS) if KIND == "dask" else RayTaskRunner(ADDRESS)


def note() -> None:
    """Leave a note saying which process runs this attempt of the current task run."""
    run = get_run_context().task_run  # type: ignore[union-attr]
    where = {"pid": os.getpid(), "ppid": os.getppid(), "host": socket.gethostname()}
    Path(NOTES, f"{run.id}-{run.run_count}.json").write_text(json.dumps(where))


@task
def square(x: int) -> int:
    note()
    time.sleep(0.2)  # long enough that the cluster spreads the map over its workers
    return x * x


@task
def add(a: int, b: int) -> int:
    note()
    return a + b


@task(retries=1, retry_delay_seconds=0)
def flaky(x: int) -> int:
    note()
    if get_run_context().task_run.run_count == 1:  # type: ignore[union-attr]
        raise RuntimeError("the first attempt fails on purpose")
    return x


@task(retries=1, retry_delay_seconds=0)
def doomed() -> None:
    note()
    raise ValueError("every attempt fails")


@flow(task_runner=RUNNER)
def offset(values: list[int], by: int) -> int:
    """The subflow: its own map over the values it is given."""
    return sum(add.map(values, unmapped(by)).result())


@flow(task_runner=RUNNER)
def pipeline(n: int) -> dict[str, Any]:
    squares = square.map(range(n))
    chain = squares[0]
    for item in squares[1:]:
        chain = add.submit(chain, item)
    shifted = offset(squares.result(), 10)
    recovered = flaky.submit(chain)
    doomed.submit()
    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    return {"flow_run_id": str(flow_run.id), "total": recovered.result(), "offset": shifted}


if __name__ == "__main__":
    result = pipeline(4)
    print("RESULT " + json.dumps({**result, "pid": os.getpid(), "host": socket.gethostname()}))
