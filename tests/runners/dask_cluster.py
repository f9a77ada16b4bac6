"""One Dask cluster for the whole test session: two worker processes, one thread each, started
on first use (`shared_dask_address()`) and closed when the session ends (`conftest.py`).
Starting a cluster per flow would cost a second or more each; flows connect to this one."""

from __future__ import annotations

import tempfile
from typing import Any

import dask
from distributed import LocalCluster

_cluster: list[Any] = []


def small_cluster(n_workers: int = 2, env: dict[str, str] | None = None, **kwargs: Any) -> LocalCluster:
    """A LocalCluster of worker processes that runs each call at most once, as the runner's
    own clusters do, with workers kept out of the developer's ~/.headwater (`env` adds to
    the workers' environment)."""
    home = tempfile.mkdtemp(prefix="headwater-dask-worker-")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return LocalCluster(
            n_workers=n_workers, threads_per_worker=1, dashboard_address=":0",
            env={"HEADWATER_HOME": home, **(env or {})}, **kwargs,
        )  # fmt: skip


def shared_dask_address() -> str:
    if not _cluster:
        _cluster.append(small_cluster())
    return str(_cluster[0].scheduler_address)


def close_shared_cluster() -> None:
    while _cluster:
        _cluster.pop().close()
