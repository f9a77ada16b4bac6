"""processes: N small CPU-bound tasks on `ProcessPoolTaskRunner`, against `ProcessPoolExecutor`.

What shipping the engine to worker processes costs. Each headwater task pickles its call with
cloudpickle, runs the task engine in the worker and pickles the outcome back; with recording
on (``processes+recording``) each worker also records its runs into the flow's embedded state
service over gRPC, and the flow's end confirms they arrived (re-sending any that did not)
before it returns. The baseline is ``concurrent.futures.ProcessPoolExecutor`` with the same worker count
and start method (spawn) running the same function. Both trials start and stop their pool.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from benchmarks.children import scratch_home
from benchmarks.engines import environment, require_baseline, require_headwater
from benchmarks.workload import Trial, Workload
from benchmarks.workloads._shared import spin

WORKERS = 2
SPIN = 20_000  # about a millisecond of pure Python per task


def run(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task, wait  # lazily, so baselines run without it
    from headwater.runners import ProcessPoolTaskRunner

    spin_task = task(spin)

    @flow(task_runner=ProcessPoolTaskRunner(WORKERS))
    def spin_many(count: int) -> None:
        wait([spin_task.submit(SPIN) for _ in range(count)])

    recording = runner == "processes+recording"
    env = {"HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()} if recording else {}

    def trial() -> None:
        with environment(env):
            spin_many(n)

    return trial


def baseline(engine: str, n: int) -> Trial:
    require_baseline(engine, ("processpool",))
    context = multiprocessing.get_context("spawn")

    def trial() -> None:
        with ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
            for future in [pool.submit(spin, SPIN) for _ in range(n)]:
                future.result()

    return trial


WORKLOAD = Workload(
    name="processes",
    description="N ~1 ms CPU-bound tasks on 2 worker processes, recording off and on",
    sizes={"tiny": 8, "quick": 200, "full": 1_000},
    run=run,
    baseline=baseline,
    runners={"processes": "processpool", "processes+recording": "processpool"},
    order=85,
)
