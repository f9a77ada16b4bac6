"""chain: N dependent tasks, each taking the previous task's future (latency per step)."""

from __future__ import annotations

from typing import Any

from benchmarks.engines import require_baseline, require_headwater, task_runner, threadpool
from benchmarks.workload import LATENCY, Trial, Workload
from benchmarks.workloads._shared import noop


def run(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task  # lazily, so baselines run without it

    noop_task = task(noop)

    @flow(task_runner=task_runner(runner))
    def chain(length: int) -> None:
        previous: Any = None
        for _ in range(length):
            previous = noop_task.submit(previous)  # a future argument is a dependency
        previous.result()

    def trial() -> None:
        chain(n)

    return trial


def baseline(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        with threadpool() as pool:
            # The raw engine knows no dependencies: wait for each step, then submit the next.
            value: Any = None
            for _ in range(n):
                value = pool.submit(noop, value).result()

    return trial


WORKLOAD = Workload(
    name="chain",
    description="a chain of N dependent tasks (each takes the previous future); ms per step",
    sizes={"tiny": 20, "quick": 1_000, "full": 1_000},
    run=run,
    baseline=baseline,
    figures=LATENCY,
    order=30,
)
