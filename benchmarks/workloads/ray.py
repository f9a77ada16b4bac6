"""ray: what `RayTaskRunner` adds on top of raw Ray, on one local Ray shared by both sides.

* ``ray-submit``: N no-op tasks via ``.submit``, with recording on (each Ray worker records
  its runs into the flow's embedded state service and makes them durable before the Ray task
  returns), against N raw ``remote`` calls of the same no-op gathered with ``ray.get``.
* ``ray-chain``: a chain of N dependent tasks, each taking the previous future; ms per step,
  against a raw chain of ``ObjectRef`` arguments.

Ray is started once per suite process (2 CPUs, a 200 MB object store, no dashboard) by
whichever trial needs it first, and shut down at exit; the runner finds it running and leaves
it alone, as it would a cluster. Starting Ray is not timed. Recording, once on, stays on in a
process, so these run after the workloads that measure without it.
"""

from __future__ import annotations

import atexit
import functools
import os
from pathlib import Path
from typing import Any

from benchmarks.children import scratch_home
from benchmarks.engines import environment, require_baseline, require_headwater
from benchmarks.workload import LATENCY, THROUGHPUT, Trial, Workload
from benchmarks.workloads._shared import noop

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def _ray() -> Any:
    """The `ray` module, with a small local Ray running (started here once if needed)."""
    import ray

    if not ray.is_initialized():
        pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
        options: dict[str, Any] = {
            "address": "local",  # never join a cluster `ray start` runs on this machine
            "num_cpus": 2,
            "include_dashboard": False,
            "object_store_memory": 200 * 1024 * 1024,
            "log_to_driver": False,
            "runtime_env": {"env_vars": {"PYTHONPATH": pythonpath}},  # workers import benchmarks
        }
        try:
            ray.init(**options)
        except Exception:  # a head that did not come up in time on a loaded machine: once more
            ray.shutdown()
            ray.init(**options)
        atexit.register(ray.shutdown)
    return ray


@functools.cache
def _remote_noop() -> Any:
    return _ray().remote(noop)


@functools.cache
def _recording_env() -> dict[str, str]:
    return {"HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()}


def run_submit(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task, wait  # lazily, so baselines run without it
    from headwater.runners import RayTaskRunner

    _ray()
    noop_task = task(noop)

    @flow(task_runner=RayTaskRunner())
    def many(count: int) -> None:
        wait([noop_task.submit(i) for i in range(count)])

    def trial() -> None:
        with environment(_recording_env()):
            many(n)

    return trial


def baseline_submit(engine: str, n: int) -> Trial:
    require_baseline(engine, ("ray",))
    ray, remote_noop = _ray(), _remote_noop()

    def trial() -> None:
        ray.get([remote_noop.remote(i) for i in range(n)])

    return trial


def run_chain(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater import flow, task
    from headwater.runners import RayTaskRunner

    _ray()
    noop_task = task(noop)

    @flow(task_runner=RayTaskRunner())
    def chain(length: int) -> None:
        previous: Any = None
        for _ in range(length):
            previous = noop_task.submit(previous)  # a future argument is a dependency
        previous.result()

    def trial() -> None:
        with environment(_recording_env()):
            chain(n)

    return trial


def baseline_chain(engine: str, n: int) -> Trial:
    require_baseline(engine, ("ray",))
    ray, remote_noop = _ray(), _remote_noop()

    def trial() -> None:
        ref: Any = None
        for _ in range(n):
            ref = remote_noop.remote(ref)  # Ray resolves the previous ref before it runs
        ray.get(ref)

    return trial


WORKLOADS = (
    Workload(
        name="ray-submit",
        description="N no-op tasks on RayTaskRunner with recording on, vs raw remote calls",
        sizes={"tiny": 10, "quick": 200, "full": 1_000},
        run=run_submit,
        baseline=baseline_submit,
        figures=THROUGHPUT,
        runners={"ray": "ray"},
        env={},
        # Before any workload that leaves gRPC threads in this process (service, clients,
        # processes, dask: order 80 and up): Ray forks its head processes from here, and a
        # fork beside live gRPC threads once left its GCS server hung past Ray's 30 s start.
        order=75,
    ),
    Workload(
        name="ray-chain",
        description="a chain of N dependent tasks on RayTaskRunner vs raw ObjectRefs; ms per step",
        sizes={"tiny": 10, "quick": 100, "full": 100},
        run=run_chain,
        baseline=baseline_chain,
        figures=LATENCY,
        runners={"ray": "ray"},
        env={},
        order=76,
    ),
)
