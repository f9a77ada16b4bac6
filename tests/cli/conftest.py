"""The recorded runs most `headwater runs` tests read."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from headwater.api import StateClient, StateServer
from tests.api.helpers import flow, state, task
from tests.cli.helpers import TOKEN


@pytest.fixture
def recorded() -> Iterator[tuple[StateServer, dict[str, UUID]]]:
    """A server with a parent flow (2 tasks, one fed by the other) and a child flow; `load`
    moved to a worker, `total` was recorded by a client that did not say where it ran."""
    srv = StateServer(Path(os.environ["HEADWATER_HOME"]), port=0, token=TOKEN, synchronous="NORMAL")
    srv.start()
    with StateClient(srv.url, token=TOKEN) as c:
        parent = flow("etl", host="flow-host", pid=101)
        c.create_flow_run(parent)
        c.set_state(state(parent.id, "RUNNING"))
        load = task(parent.id, "load", host="worker-host", pid=202, moved=True)
        total = task(parent.id, "total", upstream={"rows": (load.id,)})
        for t in (load, total):
            c.create_task_run(t)
            for type_ in ("PENDING", "RUNNING", "COMPLETED"):
                c.set_state(state(t.id, type_, "task"))
        child = flow("report", parent_flow_run_id=parent.id, parent_task_run_id=total.id)
        c.create_flow_run(child)
        c.set_state(state(child.id, "RUNNING"))
        c.set_state(state(child.id, "FAILED", message="boom"))
        c.set_state(state(parent.id, "COMPLETED"))
    yield srv, {"parent": parent.id, "child": child.id, "load": load.id, "total": total.id}
    srv.stop(0.5)
