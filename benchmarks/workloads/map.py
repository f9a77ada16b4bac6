"""map: N no-op tasks created with one `.map` call, then waited on (throughput)."""

from __future__ import annotations

from benchmarks.engines import require_baseline, require_headwater, task_runner, threadpool
from benchmarks.workload import Trial, Workload
from benchmarks.workloads._shared import noop


def run(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task  # lazily, so baselines run without it

    noop_task = task(noop)

    @flow(task_runner=task_runner(runner))
    def map_many(count: int) -> None:
        noop_task.map(range(count)).result()

    def trial() -> None:
        map_many(n)

    return trial


def baseline(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        with threadpool() as pool:
            # Executor.map is the raw engine's own bulk submit; list() waits for every result.
            list(pool.map(noop, range(n)))

    return trial


WORKLOAD = Workload(
    name="map",
    description="N no-op tasks via one .map call, then wait; throughput",
    sizes={"tiny": 50, "quick": 2_000, "full": 10_000},
    run=run,
    baseline=baseline,
    order=20,
)
