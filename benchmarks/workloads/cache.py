"""cache: what a result-cache hit costs, and what caching saves on a rerun (issue #10).

Tasks cache with ``cache_policy=TASK_SOURCE + INPUTS`` (`headwater.cache`). The flows record
into the embedded state service (the default a user gets), whose store is under the suite's
scratch ``HEADWATER_HOME``; like the Dask workloads they record in the suite's process, so
they run after the workloads that measure with recording off (``order``).

* ``cache-hit``: a flow makes N calls of a cached no-op task, all hits (the factory runs the
  flow once untimed to store them, then checks that every call of a second run was
  ``Cached``). ``direct`` calls ``t(i)`` in turn on the default runner; ``submit`` uses
  ``.submit`` on `ConcurrentTaskRunner` and then asks each future for its result. Each trial
  also runs the same flow with the same function as a task without a cache policy (in
  alternating order, so neither always goes first), so ``µs added/hit`` = (cached − uncached)
  / N comes from one trial; the baseline engine, ``raw-call``, is N plain calls of the
  function. Target: under 200 µs added per hit.
* ``cache-rerun``: N mapped cached tasks of about 1 ms of pure Python each, run cold (the
  store cleared first) and again (all hits), on threads and on the suite's Dask cluster
  (workers look the keys up themselves, in the same store through the state service). The
  raw engine runs the same N calls twice (it has no cache), so its rerun/cold is about 1.

The cost of a key of a large array is `cache_hash.py`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from benchmarks.children import scratch_home
from benchmarks.engines import environment, require_baseline, require_headwater, threadpool
from benchmarks.workload import SECONDS, Figure, Trial, Workload
from benchmarks.workloads._shared import noop, spin

HIT_TARGET_US = 200.0
SPIN = 20_000  # about a millisecond of pure Python per task (`processes` uses the same)


def _recording_env() -> dict[str, str]:
    return {"HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()}


def _cached(fn: Callable[..., Any]) -> Any:
    from headwater import task
    from headwater.cache import INPUTS, TASK_SOURCE

    return task(fn, cache_policy=TASK_SOURCE + INPUTS)


def _cached_count(futures: list[Any]) -> int:
    return sum(future.state.name == "Cached" for future in futures)


# -- cache-hit ------------------------------------------------------------------------------


def _hit_flow(runner: str, t: Any) -> Any:
    """The flow of one cache-hit side: N calls of task ``t``. ``submit`` returns how many were
    Cached; ``direct`` returns None (a direct call gives the value, not its state)."""
    from headwater import flow
    from headwater.runners import ConcurrentTaskRunner

    def direct_calls(count: int) -> None:
        for i in range(count):
            t(i)

    def submitted_calls(count: int) -> int:
        futures = [t.submit(i) for i in range(count)]
        for future in futures:
            future.result()
        return _cached_count(futures)

    if runner == "direct":  # the default runner: direct calls run inline in the flow's thread
        return flow(direct_calls)
    if runner == "submit":
        return flow(task_runner=ConcurrentTaskRunner())(submitted_calls)
    raise ValueError(f"no cache-hit runner named {runner!r} (has: direct, submit)")


def run_hit(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task

    cached = _cached(noop)
    cached_flow = _hit_flow(runner, cached)
    uncached_flow = _hit_flow(runner, task(noop))
    env = _recording_env()

    def count_hits(count: int) -> int:
        return sum(cached(i, return_state=True).name == "Cached" for i in range(count))

    check_hits = flow(count_hits)

    with environment(env):  # untimed: store the N values, then make sure they are all hits
        cached_flow(n)
        hits = check_hits(n)
    if hits != n:
        raise RuntimeError(f"cache-hit: {n - hits} of {n} calls missed the cache after it was warmed")
    turns = itertools.count()

    def trial() -> dict[str, float]:
        cached_first = next(turns) % 2 == 0
        with environment(env):
            times: dict[str, float] = {}
            for side in ("cached", "uncached") if cached_first else ("uncached", "cached"):
                started = time.perf_counter()
                hits = (cached_flow if side == "cached" else uncached_flow)(n)
                times[side] = time.perf_counter() - started
                if side == "cached" and hits is not None and hits != n:
                    raise RuntimeError(f"cache-hit: {n - hits} of {n} calls missed the cache")
        return {"seconds": times["cached"], "uncached_seconds": times["uncached"]}

    return trial


def baseline_hit(engine: str, n: int) -> Trial:
    require_baseline(engine, ("raw-call",))

    def trial() -> dict[str, float]:
        started = time.perf_counter()
        for i in range(n):
            noop(i)
        elapsed = time.perf_counter() - started
        return {"seconds": elapsed, "uncached_seconds": elapsed}  # nothing added: no cache

    return trial


HIT_FIGURES: tuple[Figure, ...] = (
    Figure(
        "us_added_per_hit",
        "µs added/hit",  # (cached flow - the same flow uncached) / N, from one trial
        lambda raw, n: (raw["seconds"] - raw["uncached_seconds"]) / n * 1e6,
        target=HIT_TARGET_US,
    ),
    Figure("us_per_hit", "µs/call cached", lambda raw, n: raw["seconds"] / n * 1e6),
    Figure("us_per_uncached_call", "µs/call uncached", lambda raw, n: raw["uncached_seconds"] / n * 1e6),
    Figure(
        "hit_over_uncached", "cached/uncached", lambda raw, n: raw["seconds"] / raw["uncached_seconds"], in_table=False
    ),
    SECONDS,
)

# -- cache-rerun ----------------------------------------------------------------------------

def _dask_address() -> str:
    from benchmarks.workloads.dask import _address  # the suite's one LocalCluster

    return _address()


def run_rerun(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow
    from headwater.api import recorder_target
    from headwater.runtime.caching import store_for

    if runner == "concurrent+recording":
        from headwater.runners import ConcurrentTaskRunner

        task_runner: Any = ConcurrentTaskRunner()
    elif runner == "dask+recording":
        from headwater.runners import DaskTaskRunner

        task_runner = DaskTaskRunner(address=_dask_address())
    else:
        raise ValueError(f"no cache-rerun runner named {runner!r}")
    cached_spin = _cached(spin)
    items = [SPIN + i for i in range(n)]  # a distinct key per task, about the same work

    def spin_cached() -> int:
        futures = cached_spin.map(items)
        futures.result()
        return _cached_count(futures)

    spin_all = flow(task_runner=task_runner)(spin_cached)

    env = _recording_env()

    def trial() -> dict[str, float]:
        with environment(env):
            store_for(recorder_target()).clear()  # the service's store: every trial starts cold
            started = time.perf_counter()
            cold_hits = spin_all()
            cold = time.perf_counter() - started
            started = time.perf_counter()
            rerun_hits = spin_all()
            rerun = time.perf_counter() - started
        if cold_hits != 0 or rerun_hits != n:
            raise RuntimeError(f"cache-rerun: {cold_hits} hits cold and {rerun_hits} of {n} on the rerun")
        return {"cold_seconds": cold, "rerun_seconds": rerun, "seconds": cold + rerun}

    return trial


def baseline_rerun(engine: str, n: int) -> Trial:
    require_baseline(engine, ("threadpool", "dask"))
    items = [SPIN + i for i in range(n)]
    once: Callable[[], object]
    if engine == "threadpool":

        def once() -> object:
            with threadpool() as pool:
                return list(pool.map(spin, items))

    else:
        from distributed import Client as client_class  # untyped

        address = _dask_address()
        Client: Any = client_class

        def once() -> object:  # a client per run, as each flow run opens its own
            with Client(address) as client:
                return client.gather(client.map(spin, items, pure=False))

    def trial() -> dict[str, float]:
        started = time.perf_counter()
        once()
        cold = time.perf_counter() - started
        started = time.perf_counter()
        once()  # no cache: the same work again
        rerun = time.perf_counter() - started
        return {"cold_seconds": cold, "rerun_seconds": rerun, "seconds": cold + rerun}

    return trial


RERUN_FIGURES: tuple[Figure, ...] = (
    Figure("rerun_over_cold", "rerun/cold", lambda raw, n: raw["rerun_seconds"] / raw["cold_seconds"]),
    Figure("cold_s", "s cold", lambda raw, n: raw["cold_seconds"]),
    Figure("rerun_s", "s rerun", lambda raw, n: raw["rerun_seconds"]),
    Figure(
        "speedup", "× faster rerun", lambda raw, n: raw["cold_seconds"] / raw["rerun_seconds"],
        higher_is_better=True, in_table=False,
    ),  # fmt: skip
    SECONDS,
)

WORKLOADS = (
    Workload(
        name="cache-hit",
        description="N calls of a cached task, all hits, recorded; µs a hit adds to an uncached call",
        sizes={"tiny": 20, "quick": 500, "full": 2_000},
        run=run_hit,
        baseline=baseline_hit,
        figures=HIT_FIGURES,
        runners={"direct": "raw-call", "submit": "raw-call"},
        size_unit="calls",
        env={},  # each trial records into the scratch home itself
        repeats={"quick": 5, "full": 7},  # a difference of two noisy times: more repeats
        order=91,
    ),
    Workload(
        name="cache-rerun",
        description="N mapped ~1 ms cached tasks run cold, then rerun (all hits); threads and Dask",
        sizes={"tiny": 10, "quick": 200, "full": 1_000},
        run=run_rerun,
        baseline=baseline_rerun,
        figures=RERUN_FIGURES,
        runners={"concurrent+recording": "threadpool", "dask+recording": "dask"},
        env={},
        order=94,
    ),
)
