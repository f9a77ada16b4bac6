"""dask: no-op tasks on `DaskTaskRunner`, against raw ``Client.submit`` on the same cluster.

What running the engine on Dask workers costs. One LocalCluster (2 worker processes x 1
thread) is started the first time a trial needs it and serves the whole suite run, so cluster
start-up is measured by neither side; each trial opens and closes its own client, as a flow
does. Headwater submits one Dask task per task run (the engine, whose outcome stays on the
worker; the state without the value comes back as a Dask event); each worker records its
runs into the flow's embedded state service, and the flow's end confirms they arrived.

* ``dask-submit``: N independent no-op tasks, then wait for all.
* ``dask-chain``: N dependent no-op tasks, each taking the previous one's future. Headwater
  dispatches a step once the flow hears the previous one finished (a round trip through the
  flow's process per step); raw Dask hands the whole chain to its scheduler at once.
* ``dask-map``: N no-op tasks from one ``Task.map``, against raw ``Client.map``. Both bring the
  N values back to the flow: ``FutureList.result()`` against ``Client.gather`` (one batched
  call; headwater fetches each value from its worker in turn, which shows here).
* ``dask-fanout``: N no-op tasks, then one task given the list of their futures, against
  ``Client.submit`` of the same fan-in given the list of raw futures (Dask resolves them).
* ``dask-data-large``: a task pinned to one worker makes N MiB of bytes, a task pinned to the
  other takes them and returns their length (Dask moves the bytes between the two worker
  processes); the flow asks only for the length. Each measurement is a fresh driver process
  (`_remote.data_large_trial`) reporting its peak RSS growth: the flow process must not grow
  with the data (target: under 10 MiB added), as the raw client does not.

Throughput and chain latency carry the target of issue #9: within 1.5x of raw Dask.
"""

from __future__ import annotations

import atexit
from typing import Any

from benchmarks.children import scratch_home
from benchmarks.engines import environment, require_baseline, require_headwater
from benchmarks.workload import Trial, Workload
from benchmarks.workloads._remote import (
    DATA_LARGE_FIGURES,
    LATENCY_TARGETED,
    THROUGHPUT_TARGETED,
    data_large_trial,
    fanout_body,
    map_body,
)
from benchmarks.workloads._shared import count, noop

WORKERS = 2
_cluster: list[Any] = []


def _address() -> str:
    """The suite's one cluster, started on first use and closed when the suite exits."""
    if not _cluster:
        import dask
        from distributed import LocalCluster

        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(
                n_workers=WORKERS, threads_per_worker=1, dashboard_address=":0",
                env={"HEADWATER_HOME": scratch_home()},
            )  # fmt: skip
        atexit.register(cluster.close)
        _cluster.append(cluster)
    return str(_cluster[0].scheduler_address)


def _recorded_flow(body: Any) -> Trial:
    require_headwater()
    from headwater import flow
    from headwater.runners import DaskTaskRunner

    address = _address()
    run = flow(task_runner=DaskTaskRunner(address=address))(body)
    env = {"HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()}

    def trial() -> None:
        with environment(env):
            run()

    return trial


def run_submit(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import task, wait

    noop_task = task(noop)

    def submit_many() -> None:
        wait([noop_task.submit(i) for i in range(n)])

    return _recorded_flow(submit_many)


def run_chain(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import task

    noop_task = task(noop)

    def chain() -> None:
        previous: Any = None
        for _ in range(n):
            previous = noop_task.submit(previous)  # a future argument is a dependency
        previous.result()

    return _recorded_flow(chain)


def run_map(runner: str, n: int) -> Trial:
    require_headwater()
    return _recorded_flow(map_body(n))


def run_fanout(runner: str, n: int) -> Trial:
    require_headwater()
    return _recorded_flow(fanout_body(n))


def run_data_large(runner: str, n: int) -> Trial:
    require_headwater()  # fail soft with the import error here, not as a child's traceback
    return data_large_trial("data_large_dask.py", "headwater", _address(), n)


def baseline_submit(engine: str, n: int) -> Trial:
    require_baseline(engine, ("dask",))
    from distributed import Client

    address = _address()

    def trial() -> None:
        with Client(address) as client:
            client.gather([client.submit(noop, i, pure=False) for i in range(n)])

    return trial


def baseline_chain(engine: str, n: int) -> Trial:
    require_baseline(engine, ("dask",))
    from distributed import Client

    address = _address()

    def trial() -> None:
        with Client(address) as client:
            previous: Any = None
            for _ in range(n):
                previous = client.submit(noop, previous, pure=False)
            previous.result()

    return trial


def baseline_map(engine: str, n: int) -> Trial:
    require_baseline(engine, ("dask",))
    from distributed import Client

    address = _address()

    def trial() -> None:
        with Client(address) as client:
            client.gather(client.map(noop, range(n), pure=False))

    return trial


def baseline_fanout(engine: str, n: int) -> Trial:
    require_baseline(engine, ("dask",))
    from distributed import Client

    address = _address()

    def trial() -> None:
        with Client(address) as client:
            branches = [client.submit(noop, i, pure=False) for i in range(n)]
            client.submit(count, branches, pure=False).result()

    return trial


def baseline_data_large(engine: str, n: int) -> Trial:
    require_baseline(engine, ("dask",))
    return data_large_trial("data_large_dask.py", "raw", _address(), n)


RUNNERS = {"dask+recording": "dask"}

WORKLOADS = (
    Workload(
        name="dask-submit",
        description="N no-op tasks on a 2-process Dask LocalCluster, recorded by the workers",
        sizes={"tiny": 10, "quick": 200, "full": 1_000},
        run=run_submit,
        baseline=baseline_submit,
        figures=THROUGHPUT_TARGETED,
        runners=RUNNERS,
        order=86,
    ),
    Workload(
        name="dask-chain",
        description="a chain of N dependent no-op tasks on Dask, recorded; ms per step",
        sizes={"tiny": 10, "quick": 100, "full": 100},
        run=run_chain,
        baseline=baseline_chain,
        figures=LATENCY_TARGETED,
        runners=RUNNERS,
        order=87,
    ),
    Workload(
        name="dask-map",
        description="N no-op tasks via one .map on Dask, recorded, vs raw Client.map",
        sizes={"tiny": 10, "quick": 100, "full": 1_000},  # quick: the CI smoke run stays short
        run=run_map,
        baseline=baseline_map,
        figures=THROUGHPUT_TARGETED,
        runners=RUNNERS,
        order=88,
    ),
    Workload(
        name="dask-fanout",
        description="N no-op tasks on Dask, then one fan-in task given all N futures; recorded",
        sizes={"tiny": 10, "quick": 100, "full": 1_000},  # quick: the CI smoke run stays short
        run=run_fanout,
        baseline=baseline_fanout,
        figures=THROUGHPUT_TARGETED,
        runners=RUNNERS,
        order=89,
    ),
    Workload(
        name="dask-data-large",
        description="N MiB made on one Dask worker, consumed on the other; flow RSS growth",
        sizes={"tiny": 4, "quick": 100, "full": 100},
        run=run_data_large,
        baseline=baseline_data_large,
        figures=DATA_LARGE_FIGURES,
        runners=RUNNERS,
        size_unit="MiB",
        warmup=False,  # each trial is a fresh driver that warms itself up
        repeats={"quick": 1},
        order=90,
    ),
)
