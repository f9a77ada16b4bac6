"""fanout: N independent no-op tasks, then one fan-in task receiving the list of futures."""

from __future__ import annotations

from benchmarks.engines import require_baseline, require_headwater, task_runner, threadpool
from benchmarks.workload import THROUGHPUT, Trial, Workload
from benchmarks.workloads._shared import count, noop


def run(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task  # lazily, so baselines run without it

    noop_task = task(noop)
    count_task = task(count)

    @flow(task_runner=task_runner(runner))
    def fan_out_in(width: int) -> int:
        branches = [noop_task.submit(i) for i in range(width)]
        # A list of futures as an argument: the runtime resolves every one before fan-in.
        return int(count_task.submit(branches).result())

    def trial() -> None:
        fan_out_in(n)

    return trial


def baseline(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        with threadpool() as pool:
            branches = [pool.submit(noop, i) for i in range(n)]
            pool.submit(count, [branch.result() for branch in branches]).result()

    return trial


WORKLOAD = Workload(
    name="fanout",
    description="fan-out of N no-op tasks, then one fan-in task given the list of futures",
    sizes={"tiny": 20, "quick": 1_000, "full": 1_000},
    run=run,
    baseline=baseline,
    figures=THROUGHPUT,
    order=40,
)
