"""Shared engines for the runner tests: one Dask cluster and one local Ray for the whole session.

Starting either costs seconds, so the tests share them: each `DaskTaskRunner` is given the
shared cluster's address, and each `RayTaskRunner` finds Ray initialised and neither starts
nor stops it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runners.cluster_processes import Processes
from tests.runners.dask_cluster import close_shared_cluster

ROOT = Path(__file__).resolve().parents[2]

#: Small enough for a shared two-core machine: two CPUs, a 200 MB object store, no dashboard.
RAY_INIT = {
    # A Ray of our own: without an address, ray.init() joins any cluster `ray start` runs on
    # this machine (a head-loss test's, another checkout's) and then refuses num_cpus.
    "address": "local",
    "num_cpus": 2,
    "include_dashboard": False,
    "object_store_memory": 200 * 1024 * 1024,
    "log_to_driver": False,
    # workers import test modules by name (tasks defined in them pickle by reference)
    "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}},
}


@pytest.fixture(scope="session", autouse=True)
def _shared_dask_cluster() -> Iterator[None]:
    """Closes the session's Dask cluster, if a test started it (`shared_dask_address()`)."""
    yield
    close_shared_cluster()


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray of the session's own. `address="local"`: without it `ray.init()` joins a
    Ray that `ray start` left on the machine (named in /tmp/ray/ray_current_cluster), anyone's,
    and refuses `num_cpus` for it."""
    import ray

    ray.init(**RAY_INIT)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Cluster and server processes a test starts by hand, each killed when it ends."""
    started = Processes()
    try:
        yield started
    finally:
        started.kill_all()
