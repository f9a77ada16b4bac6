"""data: handing objects from one task to the next, small (many hand-offs) and large (one).

``data-small``: N producer -> consumer pairs, each passing a small dict.
``data-large``: one producer -> consumer pair passing an N MiB ``bytearray`` (allocated once
per process, untimed, so the figure is the hand-off and not the allocator; see `_shared`).
Select both with ``python -m benchmarks data``.
"""

from __future__ import annotations

from benchmarks.engines import require_baseline, require_headwater, task_runner, threadpool
from benchmarks.workload import SECONDS, US_PER_TASK, Figure, Trial, Workload
from benchmarks.workloads._shared import make_large, make_small, size_of


def run_small(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task, wait  # lazily, so baselines run without it

    produce, consume = task(make_small), task(size_of)

    @flow(task_runner=task_runner(runner))
    def hand_off_small(pairs: int) -> None:
        consumers = [consume.submit(produce.submit(i)) for i in range(pairs)]
        wait(consumers)

    def trial() -> None:
        hand_off_small(n)

    return trial


def baseline_small(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        with threadpool() as pool:
            producers = [pool.submit(make_small, i) for i in range(n)]
            consumers = [pool.submit(size_of, p.result()) for p in producers]
            for consumer in consumers:
                consumer.result()

    return trial


def run_large(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task  # lazily, so baselines run without it

    produce, consume = task(make_large), task(size_of)

    @flow(task_runner=task_runner(runner))
    def hand_off_large(mebibytes: int) -> int:
        return int(consume.submit(produce.submit(mebibytes)).result())

    def trial() -> None:
        hand_off_large(n)

    return trial


def baseline_large(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        with threadpool() as pool:
            buffer = pool.submit(make_large, n).result()
            pool.submit(size_of, buffer).result()

    return trial


US_PER_PAIR = Figure("us_per_pair", "µs/pair", US_PER_TASK.compute)
MS_PER_HANDOFF = Figure("ms_per_handoff", "ms/hand-off", lambda raw, n: raw["seconds"] * 1e3)
MIB_PER_S = Figure(
    "mib_per_s", "MiB/s", lambda raw, n: n / raw["seconds"], higher_is_better=True, in_table=False
)  # telling once process-based runners copy the object; with threads it is only a reference

WORKLOADS = (
    Workload(
        name="data-small",
        description="N producer->consumer pairs passing a small dict; µs per pair",
        sizes={"tiny": 20, "quick": 500, "full": 1_000},
        run=run_small,
        baseline=baseline_small,
        figures=(US_PER_PAIR, SECONDS),
        size_unit="pairs",
        order=50,
    ),
    Workload(
        name="data-large",
        description="one producer->consumer pair passing an N MiB bytearray",
        sizes={"tiny": 1, "quick": 10, "full": 100},
        run=run_large,
        baseline=baseline_large,
        figures=(MS_PER_HANDOFF, MIB_PER_S, SECONDS),
        size_unit="MiB",
        order=51,
    ),
)
