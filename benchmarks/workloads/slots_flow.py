"""Tagged task runs under a concurrency limit (issue #11); see `slots.py` for the family.

Each flow records into this process's embedded service (scratch ``HEADWATER_HOME``), where
the factory creates the limit; a task tagged with its name waits for a slot in the flow's
scheduler before it is handed to `ConcurrentTaskRunner`. The raw side is a
`ThreadPoolExecutor` whose tasks take a `threading.Semaphore` of the same size.

* ``slots-flow``: N no-op tasks tagged with a limit of 10, ``.submit`` then ``wait``. Each
  trial also runs the same flow with the same task untagged (alternating which goes first),
  so ``× untagged`` is what the limit costs the flow, from one trial; the raw side likewise
  runs its pool with and without the semaphore.
* ``slots-handoff``: N tasks under a limit of 1, each returning when it started and ended;
  a handoff is the next start minus the previous end (from a slot's release to the next
  waiter running). A trial fails if two runs overlap (the limit did not hold).
* ``slots-ideal``: N tasks of 10 ms under a limit of 5 on ``ConcurrentTaskRunner(16)``: the
  ideal is N × 10 ms / 5 (0.4 s for 200). Target: within 1.5× of ideal. Prefect 3 took
  215-245 s for this (issue #11).
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.engines import environment, require_baseline, require_headwater, threadpool
from benchmarks.workload import Figure, Trial, Workload
from benchmarks.workloads._shared import noop
from benchmarks.workloads._slots import embedded_limit, percentile, recording_env

FLOW_LIMIT, FLOW_SLOTS = "bench-flow", 10
HANDOFF_LIMIT = "bench-handoff"
IDEAL_LIMIT, IDEAL_SLOTS, IDEAL_WORKERS, IDEAL_TASK_S = "bench-ideal", 5, 16, 0.010
IDEAL_TARGET = 1.5


def times(i: int) -> tuple[float, float]:
    """A task that says when it ran (perf_counter is one clock for every thread)."""
    started = time.perf_counter()
    return started, time.perf_counter()


def nap(i: int) -> int:
    time.sleep(IDEAL_TASK_S)
    return i


def _submit_all(t: Any, count: int) -> list[Any]:
    futures = [t.submit(i) for i in range(count)]
    return [future.result() for future in futures]


def _only_concurrent(runner: str) -> None:
    if runner != "concurrent":
        raise ValueError(f"no {runner!r} runner for this workload (has: concurrent)")


def _flow(task_runner: Any) -> Any:
    from headwater import flow

    return flow(task_runner=task_runner)(_submit_all)


# -- slots-flow -----------------------------------------------------------------------------


def run_flow(runner: str, n: int) -> Trial:
    require_headwater()
    _only_concurrent(runner)
    from headwater import task
    from headwater.runners import ConcurrentTaskRunner

    embedded_limit(FLOW_LIMIT, FLOW_SLOTS)
    tagged, untagged = task(noop, tags=[FLOW_LIMIT]), task(noop)
    submit_all = _flow(ConcurrentTaskRunner())
    turns = itertools.count()

    def trial() -> dict[str, float]:
        tagged_first = next(turns) % 2 == 0
        seconds: dict[bool, float] = {}
        with environment(recording_env()):
            for is_tagged in (True, False) if tagged_first else (False, True):
                started = time.perf_counter()
                submit_all(tagged if is_tagged else untagged, n)
                seconds[is_tagged] = time.perf_counter() - started
        return {"seconds": seconds[True], "untagged_seconds": seconds[False]}

    return trial


def baseline_flow(engine: str, n: int) -> Trial:
    require_baseline(engine, ("threadpool+semaphore",))
    turns = itertools.count()

    def run(semaphore: threading.Semaphore | None) -> float:
        def limited(i: int) -> Any:
            assert semaphore is not None
            with semaphore:
                return noop(i)

        body = noop if semaphore is None else limited
        started = time.perf_counter()
        with threadpool() as pool:
            for future in [pool.submit(body, i) for i in range(n)]:
                future.result()
        return time.perf_counter() - started

    def trial() -> dict[str, float]:
        limited_first = next(turns) % 2 == 0
        seconds: dict[bool, float] = {}
        for is_limited in (True, False) if limited_first else (False, True):
            seconds[is_limited] = run(threading.Semaphore(FLOW_SLOTS) if is_limited else None)
        return {"seconds": seconds[True], "untagged_seconds": seconds[False]}

    return trial


FLOW_FIGURES: tuple[Figure, ...] = (
    Figure("tasks_per_s", "tasks/s", lambda raw, n: n / raw["seconds"], higher_is_better=True),
    Figure("over_untagged", "× untagged", lambda raw, n: raw["seconds"] / raw["untagged_seconds"]),
    Figure("us_per_task", "µs/task", lambda raw, n: raw["seconds"] / n * 1e6),
    Figure("untagged_tasks_per_s", "tasks/s untagged", lambda raw, n: n / raw["untagged_seconds"],
           higher_is_better=True),  # fmt: skip
    Figure("seconds", "s", lambda raw, n: raw["seconds"], in_table=False),
)

# -- slots-handoff --------------------------------------------------------------------------


def _handoffs(spans: list[tuple[float, float]]) -> dict[str, float]:
    spans = sorted(spans)
    gaps = sorted(spans[i + 1][0] - spans[i][1] for i in range(len(spans) - 1))
    if gaps and gaps[0] < 0:
        raise RuntimeError(f"two runs held a slot of a limit of 1 at once (overlap {-gaps[0] * 1e3:.3f} ms)")
    return {
        "p50_ms": percentile(gaps, 0.50) * 1e3,
        "p99_ms": percentile(gaps, 0.99) * 1e3,
        "mean_ms": sum(gaps) / len(gaps) * 1e3,
    }


def run_handoff(runner: str, n: int) -> Trial:
    require_headwater()
    _only_concurrent(runner)
    from headwater import task
    from headwater.runners import ConcurrentTaskRunner

    embedded_limit(HANDOFF_LIMIT, 1)
    timed = task(times, tags=[HANDOFF_LIMIT])
    submit_all = _flow(ConcurrentTaskRunner())

    def trial() -> dict[str, float]:
        with environment(recording_env()):
            started = time.perf_counter()
            spans = submit_all(timed, n)
            return {"seconds": time.perf_counter() - started, **_handoffs(spans)}

    return trial


def baseline_handoff(engine: str, n: int) -> Trial:
    require_baseline(engine, ("semaphore",))

    def trial() -> dict[str, float]:
        semaphore = threading.Semaphore(1)

        def limited(i: int) -> tuple[float, float]:
            with semaphore:
                return times(i)

        started = time.perf_counter()
        with threadpool() as pool:
            spans = [future.result() for future in [pool.submit(limited, i) for i in range(n)]]
        return {"seconds": time.perf_counter() - started, **_handoffs(spans)}

    return trial


HANDOFF_FIGURES: tuple[Figure, ...] = (
    Figure("p50_ms", "handoff p50 ms", lambda raw, n: raw["p50_ms"]),
    Figure("p99_ms", "handoff p99 ms", lambda raw, n: raw["p99_ms"]),
    Figure("mean_ms", "handoff mean ms", lambda raw, n: raw["mean_ms"], in_table=False),
    Figure("seconds", "s", lambda raw, n: raw["seconds"], in_table=False),
)

# -- slots-ideal ----------------------------------------------------------------------------


def _ideal_s(n: int) -> float:
    return n * IDEAL_TASK_S / IDEAL_SLOTS


def run_ideal(runner: str, n: int) -> Trial:
    require_headwater()
    _only_concurrent(runner)
    from headwater import task
    from headwater.runners import ConcurrentTaskRunner

    embedded_limit(IDEAL_LIMIT, IDEAL_SLOTS)
    napping = task(nap, tags=[IDEAL_LIMIT])
    submit_all = _flow(ConcurrentTaskRunner(max_workers=IDEAL_WORKERS))

    def trial() -> None:
        with environment(recording_env()):
            submit_all(napping, n)

    return trial


def baseline_ideal(engine: str, n: int) -> Trial:
    require_baseline(engine, ("threadpool+semaphore",))

    def trial() -> None:
        semaphore = threading.Semaphore(IDEAL_SLOTS)

        def limited(i: int) -> int:
            with semaphore:
                return nap(i)

        with ThreadPoolExecutor(IDEAL_WORKERS) as pool:
            for future in [pool.submit(limited, i) for i in range(n)]:
                future.result()

    return trial


IDEAL_FIGURES: tuple[Figure, ...] = (
    Figure("over_ideal", "× ideal", lambda raw, n: raw["seconds"] / _ideal_s(n), target=IDEAL_TARGET),
    Figure("wall_s", "s wall", lambda raw, n: raw["seconds"]),
    Figure("seconds", "s", lambda raw, n: raw["seconds"], in_table=False),
)

WORKLOADS = (
    Workload(
        name="slots-flow",
        description="N no-op tasks tagged with a limit of 10, submitted; beside the same flow untagged",
        sizes={"tiny": 20, "quick": 200, "full": 1_000},
        run=run_flow,
        baseline=baseline_flow,
        figures=FLOW_FIGURES,
        runners={"concurrent": "threadpool+semaphore"},
        env={},
        order=96,
    ),
    Workload(
        name="slots-handoff",
        description="N tasks under a limit of 1: from one's end to the next one's start",
        sizes={"tiny": 10, "quick": 100, "full": 200},
        run=run_handoff,
        baseline=baseline_handoff,
        figures=HANDOFF_FIGURES,
        runners={"concurrent": "semaphore"},
        env={},
        order=97,
    ),
    Workload(
        name="slots-ideal",
        description="N tasks of 10 ms under a limit of 5 on 16 workers; ideal N × 10 ms / 5",
        sizes={"tiny": 20, "quick": 100, "full": 200},
        run=run_ideal,
        baseline=baseline_ideal,
        figures=IDEAL_FIGURES,
        runners={"concurrent": "threadpool+semaphore"},
        env={},
        order=98,
    ),
)
