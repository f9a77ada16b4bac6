"""submit: N no-op tasks submitted one by one with `.submit`, then waited on (throughput)."""

from __future__ import annotations

from typing import Any

from benchmarks.engines import require_baseline, require_headwater, task_runner, threadpool
from benchmarks.workload import Trial, Workload
from benchmarks.workloads._shared import noop


def run(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task, wait  # lazily, so baselines run without it

    noop_task = task(noop)

    @flow(task_runner=task_runner(runner))
    def submit_many(count: int) -> None:
        futures = [noop_task.submit(i) for i in range(count)]
        wait(futures)

    def trial() -> None:
        submit_many(n)

    return trial


def baseline(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        with threadpool() as pool:
            futures: list[Any] = [pool.submit(noop, i) for i in range(n)]
            for future in futures:
                future.result()

    return trial


WORKLOAD = Workload(
    name="submit",
    description="N no-op tasks via .submit, then wait; throughput",
    sizes={"tiny": 50, "quick": 2_000, "full": 10_000},
    run=run,
    baseline=baseline,
    order=10,
)
