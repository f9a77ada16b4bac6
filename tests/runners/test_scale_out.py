"""Scale-out end to end: a standalone state server, a Dask cluster and a Ray cluster, each
started as processes of its own with its command-line tool (`scale_out_cluster.py`), and one
flow file (`scale_out_flow.py`: a map, a dependent chain, a subflow, a task retried after a
failure and one that fails for good) run as a script against each cluster by its address:
the Dask scheduler's, the Ray head's, and the Ray head's Ray Client server (`ray://`).

The clusters know nothing of the state server: the flow process names it
(`HEADWATER_API_URL`, `HEADWATER_API_TOKEN`) and each task carries it to its worker. Every
flow run and task run is read back from the server with `StateClient`, with its final state,
its history where a retry shaped it, and where it ran: a flow run in the script's process, a
task run in the worker process that ran its last attempt (each attempt leaves a note saying
which process it ran in, and that process is a Dask worker or a Ray worker of the cluster
started here). Runs alongside the session's local Ray (`ray_session`), which the test's Ray
cluster must not disturb.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from headwater.api import RunFilter, StateClient, TaskRunInfo
from tests.runners.scale_out_cluster import (
    FlowFileFailed,
    Processes,
    Started,
    cluster_env,
    ray_env,
    run_flow_file,
    start_dask,
    start_ray,
    start_state_server,
    state_server_url,
)

FLOW_FILE = Path(__file__).with_name("scale_out_flow.py")
TOKEN = "scale-out-token"
FLOW_TIMEOUT = 240.0  # a bound for a hung flow, not a performance target
#: Ray Client's own start-up sometimes fails on a loaded machine (the server it starts per
#: client dies before it answers): that, and only that, is tried again.
RAY_CLIENT_START_FAILED = "Initialization failure from server"
#: Where each attempt of a task run ran, by attempt number (1, 2, ...).
Attempts = dict[int, dict[str, Any]]
HISTORY = {
    "flaky-0": ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"],
    "doomed-0": ["Pending", "Running", "AwaitingRetry", "Retrying", "Failed"],
}


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        survivors = procs.stop()
    assert not survivors, f"still running after teardown: {survivors}"


@pytest.mark.timeout(600)
def test_one_flow_file_runs_on_dask_and_ray_by_address_and_every_run_says_where_it_ran(
    tmp_path: Path, processes: Processes, ray_session: None
) -> None:
    home = tmp_path / "home"  # no process here records into it: the server has its own
    server = start_state_server(processes, tmp_path / "server-home", TOKEN)
    with ThreadPoolExecutor(2) as pool:
        dask_started = pool.submit(start_dask, processes, 2, home)
        ray_started = pool.submit(start_ray, processes, home)
        dask, ray = dask_started.result(), ray_started.result()
    url = state_server_url(server)
    recording = {"HEADWATER_HOME": str(home), "HEADWATER_API_URL": url, "HEADWATER_API_TOKEN": TOKEN}
    runs = {  # how the flow file is run: its arguments (but its notes) and environment
        "dask": (["dask", dask.address], cluster_env(**recording)),
        "ray": (["ray", ray.address], ray_env(ray.token_path, **recording)),
        "ray-client": (["ray", ray.client_address], ray_env(ray.token_path, **recording)),
    }
    notes = {kind: tmp_path / f"notes-{kind}" for kind in runs}
    for directory in notes.values():
        directory.mkdir()

    with ThreadPoolExecutor(len(runs)) as pool:  # all at once, into the one server
        started = {
            kind: pool.submit(_run, *args, str(notes[kind]), env=env) for kind, (args, env) in runs.items()
        }
        results = {kind: future.result() for kind, future in started.items()}

    with StateClient(url, token=TOKEN) as client:
        for kind, workers in (("dask", dask.workers), ("ray", ray.nodes), ("ray-client", ray.nodes)):
            _check_recorded(client, results[kind], _notes(notes[kind]), _pids(workers))


def _run(*args: str, env: dict[str, str]) -> dict[str, Any]:
    """The flow file run once, or again where Ray Client failed to start (see above)."""
    for attempt in range(3):
        try:
            return run_flow_file(FLOW_FILE, *args, env=env, timeout=FLOW_TIMEOUT)
        except FlowFileFailed as exc:
            if RAY_CLIENT_START_FAILED not in exc.stderr or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _check_recorded(
    client: StateClient, result: dict[str, Any], notes: dict[UUID, Attempts], cluster: set[int]
) -> None:
    """Every run of one flow file's run is recorded, in its final state, where it ran."""
    assert (result["total"], result["offset"]) == (0 + 1 + 4 + 9, 0 + 1 + 4 + 9 + 4 * 10)
    script = (result["host"], result["pid"])
    parent = client.read_flow_run(result["flow_run_id"])
    [child] = client.list_flow_runs(RunFilter(parent_flow_run_id=parent.id))
    for run, name in ((parent, "pipeline"), (child, "offset")):
        assert (run.flow_name, run.state_type) == (name, "COMPLETED")
        assert (run.host, run.pid) == script  # a flow body runs in the script's process

    tasks = client.list_task_runs(parent.id)
    states = {t.name: t.state_type for t in tasks}
    assert states == {
        **{f"square-{i}": "COMPLETED" for i in range(4)},
        **{f"add-{i}": "COMPLETED" for i in range(3)},
        "flaky-0": "COMPLETED", "doomed-0": "FAILED",
    }  # fmt: skip
    for t in tasks:
        if t.name in HISTORY:
            assert [s.name for s in client.read_history(t.id)] == HISTORY[t.name], t.name
    subflow_tasks = client.list_task_runs(child.id)
    assert {t.name: t.state_type for t in subflow_tasks} == {f"add-{i}": "COMPLETED" for i in range(4)}

    every_task = tasks + subflow_tasks
    assert {t.id for t in every_task} == set(notes)  # each ran, and nothing else did
    for t in every_task:
        _check_placement(t, notes[t.id], script, cluster)


def _check_placement(
    run: TaskRunInfo, attempts: Attempts, script: tuple[str, int], cluster: set[int]
) -> None:
    """`run` is recorded where its last attempt ran: a worker of the cluster, not the script."""
    last = attempts[max(attempts)]
    assert (run.host, run.pid) == (last["host"], last["pid"]), run.name
    assert run.host == socket.gethostname() and run.pid != script[1], run.name
    # A Dask worker is a child of its `dask worker` (nanny) process, a Ray worker of its node's
    # raylet; Ray ends a job's workers when its driver exits, so the parent is what is left.
    assert {last["pid"], last["ppid"]} & cluster, f"{run.name} ran outside the cluster: {last}"


def _notes(directory: Path) -> dict[UUID, Attempts]:
    """The flow file's notes: task run id -> {attempt: where it ran}."""
    notes: dict[UUID, Attempts] = {}
    for path in directory.glob("*.json"):
        run_id, _, attempt = path.stem.rpartition("-")
        notes.setdefault(UUID(run_id), {})[int(attempt)] = json.loads(path.read_text())
    return notes


def _pids(started: list[Started]) -> set[int]:
    return {p.pid for s in started for p in s.tree()}
