"""ray: what `RayTaskRunner` adds on top of raw Ray, on one local Ray shared by both sides.

* ``ray-submit``: N no-op tasks via ``.submit``, with recording on (each Ray worker records
  its runs into the flow's embedded state service; the flow's end confirms they arrived), against N raw ``remote`` calls of the same no-op gathered with ``ray.get``.
* ``ray-chain``: a chain of N dependent tasks, each taking the previous future; ms per step,
  against a raw chain of ``ObjectRef`` arguments.
* ``ray-map``: N no-op tasks from one ``Task.map``. Ray has no map of its own for tasks, so the
  baseline is the same N ``remote`` calls as ``ray-submit``'s.
* ``ray-fanout``: N no-op tasks, then one task given the list of their futures, against a raw
  fan-in given the N ``ObjectRef``s as arguments (Ray resolves only whole-argument refs).
* ``ray-data-large``: one task makes N MiB of bytes, another takes them and returns their
  length; the flow asks only for the length. On one node both read Ray's shared-memory object
  store, so no bytes are copied between workers (Ray offers no way to pick a worker process,
  only a node): the time is the trip through the object store, and the figure that matters is
  the flow process's peak RSS growth (target: under 10 MiB), measured in a fresh driver that
  joins this Ray (`_remote.data_large_trial`).

Throughput and chain latency carry the target of issue #9: within 1.5x of raw Ray.

Ray is started once per suite process (2 CPUs, a 200 MB object store, no dashboard) by
whichever trial needs it first, and shut down at exit; the runner finds it running and leaves
it alone, as it would a cluster. Starting Ray is not timed. Its workers get the suite's scratch
``HEADWATER_HOME``, never the developer's ``~/.headwater``. Recording, once on, stays on in a
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
from benchmarks.workload import Trial, Workload
from benchmarks.workloads._remote import (
    DATA_LARGE_FIGURES,
    LATENCY_TARGETED,
    THROUGHPUT_TARGETED,
    data_large_trial,
    fanout_body,
    map_body,
)
from benchmarks.workloads._shared import count, count_all, noop

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def _ray() -> Any:
    """The `ray` module, with a small local Ray running (started here once if needed)."""
    import ray

    if not ray.is_initialized():
        pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
        options: dict[str, Any] = {
            "address": "local",  # a fresh Ray, even where a `ray start` cluster runs
            "num_cpus": 2,
            "include_dashboard": False,
            "object_store_memory": 200 * 1024 * 1024,
            "log_to_driver": False,
            "runtime_env": {
                "env_vars": {"PYTHONPATH": pythonpath, "HEADWATER_HOME": scratch_home()}
            },  # workers import benchmarks, and stay out of ~/.headwater
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
def _remote_count_all() -> Any:
    return _ray().remote(count_all)


def _address() -> str:
    """Where a new driver joins the suite's Ray (its GCS address)."""
    return str(_ray().get_runtime_context().gcs_address)


def _recorded_flow(body: Any) -> Trial:
    """``body`` as a flow on `RayTaskRunner`, run with recording on."""
    require_headwater()
    from headwater import flow
    from headwater.runners import RayTaskRunner

    _ray()
    run = flow(task_runner=RayTaskRunner())(body)

    def trial() -> None:
        with environment(_recording_env()):
            run()

    return trial


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


def run_map(runner: str, n: int) -> Trial:
    require_headwater()
    return _recorded_flow(map_body(n))


def run_fanout(runner: str, n: int) -> Trial:
    require_headwater()
    return _recorded_flow(fanout_body(n))


def baseline_fanout(engine: str, n: int) -> Trial:
    require_baseline(engine, ("ray",))
    ray, remote_noop, remote_count_all = _ray(), _remote_noop(), _remote_count_all()

    def trial() -> None:
        branches = [remote_noop.remote(i) for i in range(n)]
        ray.get(remote_count_all.remote(*branches))

    return trial


def run_data_large(runner: str, n: int) -> Trial:
    require_headwater()  # fail soft with the import error here, not as a child's traceback
    return data_large_trial("data_large_ray.py", "headwater", _address(), n)


def baseline_data_large(engine: str, n: int) -> Trial:
    require_baseline(engine, ("ray",))
    return data_large_trial("data_large_ray.py", "raw", _address(), n)


WORKLOADS = (
    Workload(
        name="ray-submit",
        description="N no-op tasks on RayTaskRunner with recording on, vs raw remote calls",
        sizes={"tiny": 10, "quick": 200, "full": 1_000},
        run=run_submit,
        baseline=baseline_submit,
        figures=THROUGHPUT_TARGETED,
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
        figures=LATENCY_TARGETED,
        runners={"ray": "ray"},
        env={},
        order=76,
    ),
    Workload(
        name="ray-map",
        description="N no-op tasks via one .map on RayTaskRunner, recorded, vs raw remote calls",
        sizes={"tiny": 10, "quick": 100, "full": 1_000},  # quick: the CI smoke run stays short
        run=run_map,
        baseline=baseline_submit,  # Ray has no task map: N remote calls is the raw way
        figures=THROUGHPUT_TARGETED,
        runners={"ray": "ray"},
        env={},
        order=77,
    ),
    Workload(
        name="ray-fanout",
        description="N no-op tasks on Ray, then one fan-in task given all N futures; recorded",
        sizes={"tiny": 10, "quick": 100, "full": 1_000},  # quick: the CI smoke run stays short
        run=run_fanout,
        baseline=baseline_fanout,
        figures=THROUGHPUT_TARGETED,
        runners={"ray": "ray"},
        env={},
        order=78,
    ),
    Workload(
        name="ray-data-large",
        description="N MiB made by one Ray task, consumed by another; flow RSS growth",
        sizes={"tiny": 4, "quick": 100, "full": 100},
        run=run_data_large,
        baseline=baseline_data_large,
        figures=DATA_LARGE_FIGURES,
        runners={"ray": "ray"},
        size_unit="MiB",
        env={},
        warmup=False,  # each trial is a fresh driver that warms itself up
        repeats={"quick": 1},
        order=79,
    ),
)
