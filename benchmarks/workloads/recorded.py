"""recorded: throughput on threads with every run recorded, the default a user gets (issue #19).

The core workloads (`submit`, `map`, `fanout`) measure the runtime with recording off. These
run the same shapes on `ConcurrentTaskRunner` in the suite's process, recording into the
embedded state service in the suite's scratch ``HEADWATER_HOME``, beside the raw thread pool
doing the same work in the same run:

* ``recorded-submit``: a flow ``.submit``s N no-op tasks and sums their ``.result()``s.
* ``recorded-map``: one ``.map`` of N no-op tasks, then ``.result()``.
* ``recorded-fanout``: N no-op tasks, then one fan-in task given the list of futures.
  Targets: at least 20,000 tasks/s and within 4x of the raw pool.
* ``unrecorded-submit``: the first shape with ``HEADWATER_RECORD=0``; target within 2x.
* ``recorded-flush``: a flow of N no-op tasks (100,000 full); the figure is the time from
  its last task's end (each task notes when it ends) to the flow returning, i.e. the final
  flush that makes every run durable before a flow returns. Target under 0.5 s.

Nothing lost: each factory runs its flow once untimed and reads every task run back from the
state service; a trial fails unless all N are ``Completed``. A flow returns only once its
runs are durable, so the timed figures include committing them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from benchmarks.children import scratch_home
from benchmarks.engines import environment, require_baseline, require_headwater, threadpool
from benchmarks.workload import SECONDS, US_PER_TASK, Figure, Trial, Workload
from benchmarks.workloads._shared import count, noop

RECORDED_TARGET = 20_000.0  # tasks/s (issue #19)
RECORDED_RATIO = 4.0  # within 4x of the raw pool
UNRECORDED_RATIO = 2.0
FLUSH_TARGET_S = 0.5

_LAST_FLOW_RUN: list[str] = []  # the id of the flow run a shape's body ran in, last
_ENDS: list[float] = []  # when each task of `recorded-flush` ended


@functools.cache
def _home() -> str:
    return scratch_home()


def _env(record: bool) -> dict[str, str]:
    return {"HEADWATER_RECORD": "1" if record else "0", "HEADWATER_HOME": _home()}


def _tasks_per_s(target: float | None, ratio: float) -> Figure:
    return Figure("tasks_per_s", "tasks/s", lambda raw, n: n / raw["seconds"], higher_is_better=True,
                  target=target, ratio_target=ratio)


def _shape(shape: str) -> Callable[[int], int]:
    """The flow body for `shape`, run on `ConcurrentTaskRunner`; returns how many tasks ran."""
    from headwater import flow, task
    from headwater.runners import ConcurrentTaskRunner
    from headwater.runtime import flow_run

    noop_task, count_task = task(noop), task(count)

    def submit(n: int) -> int:
        _LAST_FLOW_RUN[:] = [flow_run.id]
        futures = [noop_task.submit(i) for i in range(n)]
        return sum(1 for f in futures if f.result() is not None)

    def mapped(n: int) -> int:
        _LAST_FLOW_RUN[:] = [flow_run.id]
        return len(noop_task.map(range(n)).result())

    def fanout(n: int) -> int:
        _LAST_FLOW_RUN[:] = [flow_run.id]
        return int(count_task.submit([noop_task.submit(i) for i in range(n)]).result())

    body = {"submit": submit, "map": mapped, "fanout": fanout}[shape]
    return flow(task_runner=ConcurrentTaskRunner(), name=f"recorded-{shape}")(body)  # type: ignore[no-any-return]


def _check_nothing_lost(run: Callable[[int], Any], n: int) -> None:
    """Run once and read every task run back: all `n` (plus a fan-in) must be Completed."""
    from headwater.api import StateClient, recorder_target

    run(n)
    flow_run_id = UUID(_LAST_FLOW_RUN[-1])
    url, token, _ = recorder_target()
    with StateClient(url, token=token) as client:
        runs = client.list_task_runs(flow_run_id)
    done = sum(1 for r in runs if r.state_type == "COMPLETED")
    if done < n or done != len(runs):
        raise RuntimeError(f"recorded: {done} of {len(runs)} task runs read back Completed, {n} ran")


def _run_shape(shape: str, record: bool) -> Callable[[str, int], Trial]:
    def run(runner: str, n: int) -> Trial:
        require_headwater()
        env = _env(record)
        body = _shape(shape)
        if record:
            with environment(env):
                _check_nothing_lost(body, n)

        def trial() -> None:
            with environment(env):
                body(n)

        return trial

    return run


def _baseline_shape(shape: str) -> Callable[[str, int], Trial]:
    def baseline(engine: str, n: int) -> Trial:
        require_baseline(engine)

        def trial() -> None:
            with threadpool() as pool:
                if shape == "map":
                    list(pool.map(noop, range(n)))
                elif shape == "fanout":
                    futures = [pool.submit(noop, i) for i in range(n)]
                    pool.submit(count, [f.result() for f in futures]).result()
                else:
                    sum(1 for f in [pool.submit(noop, i) for i in range(n)] if f.result() is not None)

        return trial

    return baseline


def _note_end(i: int) -> int:
    _ENDS.append(time.perf_counter())  # list.append is atomic: any worker thread
    return i


def run_flush(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task
    from headwater.runners import ConcurrentTaskRunner
    from headwater.runtime import flow_run

    noted = task(_note_end)

    @flow(task_runner=ConcurrentTaskRunner(), name="recorded-flush")
    def many(count: int) -> None:
        _LAST_FLOW_RUN[:] = [flow_run.id]
        noted.map(range(count)).result()

    env = _env(True)

    def trial() -> dict[str, float]:
        _ENDS.clear()
        with environment(env):
            started = time.perf_counter()
            many(n)
            returned = time.perf_counter()
        if len(_ENDS) != n:
            raise RuntimeError(f"recorded-flush: {len(_ENDS)} of {n} tasks ran")
        return {"seconds": returned - started, "flush_seconds": returned - max(_ENDS)}

    with environment(env):
        _check_nothing_lost(many, min(n, 10_000))
    return trial


def baseline_flush(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> dict[str, float]:
        _ENDS.clear()
        with threadpool() as pool:
            started = time.perf_counter()
            list(pool.map(_note_end, range(n)))
            returned = time.perf_counter()
        return {"seconds": returned - started, "flush_seconds": returned - max(_ENDS)}

    return trial


def _recorded(shape: str, order: int) -> Workload:
    return Workload(
        name=f"recorded-{shape}",
        description=f"{shape} of N no-op tasks on threads, recording on; ≥ 20,000/s and ≤ 4x raw",
        sizes={"tiny": 50, "quick": 2_000, "full": 10_000},
        run=_run_shape(shape, record=True),
        baseline=_baseline_shape(shape),
        figures=(_tasks_per_s(RECORDED_TARGET, RECORDED_RATIO), US_PER_TASK, SECONDS),
        runners={"concurrent": "threadpool"},
        env={},  # each trial sets HEADWATER_RECORD and the scratch home itself
        order=order,
    )


WORKLOADS = (
    _recorded("submit", 66),
    _recorded("map", 67),
    _recorded("fanout", 68),
    Workload(
        name="unrecorded-submit",
        description="submit of N no-op tasks on threads, HEADWATER_RECORD=0; ≤ 2x raw",
        sizes={"tiny": 50, "quick": 2_000, "full": 10_000},
        run=_run_shape("submit", record=False),
        baseline=_baseline_shape("submit"),
        figures=(_tasks_per_s(None, UNRECORDED_RATIO), US_PER_TASK, SECONDS),
        runners={"concurrent": "threadpool"},
        env={},
        order=69,
    ),
    Workload(
        name="recorded-flush",
        description="a flow of N no-op tasks, recording on: its last task's end to its return",
        sizes={"tiny": 50, "quick": 20_000, "full": 100_000},
        run=run_flush,
        baseline=baseline_flush,
        figures=(
            Figure("flush_seconds", "s last task → return",
                   lambda raw, n: raw["flush_seconds"], target=FLUSH_TARGET_S),
            SECONDS,
        ),
        runners={"concurrent": "threadpool"},
        env={},
        repeats={"tiny": 1, "quick": 2, "full": 3},
        order=70,
    ),
)
