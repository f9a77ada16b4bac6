"""`serve`: the zero-set-up path. One long-running process registers deployments (no work
pool) and runs their flow runs itself, each in a subprocess, as a worker does; on the
embedded default it hosts the state service for them too. Runs are started by
`run_deployment` from anywhere (another process on the home: its doorbell rings here).
Stop it with Ctrl-C or SIGTERM; the deployments stay registered, their runs queue up until
something serves them again.
"""

from __future__ import annotations

import logging
from typing import Any

from ..runtime.flows import Flow
from .deployments import RunnerDeployment, to_deployment
from .worker import Worker, serve_forever

log = logging.getLogger("headwater.serve")


def serve(*deployments: RunnerDeployment, limit: int | None = None, worker: Worker | None = None) -> None:
    """Register `deployments` and run their runs here until interrupted (`limit`: most at once)."""
    if not deployments:
        raise ValueError("serve needs at least one deployment: serve(my_flow.to_deployment('name'), ...)")
    registered = []
    for item in deployments:
        item.work_pool_name = None  # served here, not by a pool's workers
        registered.append(item.apply())
    for dep in registered:
        log.info("serving deployment %r; run it with `headwater deployment run %s`", dep.name, dep.name)
    worker = worker or Worker(deployments=tuple(d.id for d in registered), limit=limit)
    if worker.pool is None and not worker.deployments:
        worker.deployments = tuple(d.id for d in registered)
    serve_forever(worker)


def serve_flow(flow: Flow[..., Any], name: str, *, limit: int | None = None, **options: Any) -> None:
    """`Flow.serve`: one deployment of `flow`, served here."""
    serve(to_deployment(flow, name, **options), limit=limit)
