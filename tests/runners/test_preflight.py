"""The preflight: a flow checks its runner's workers before it hands them any task run.

Unfit workers are real processes: a `dask worker` run by an interpreter that cannot import
headwater, one whose gRPC goes through a proxy that is not there (so the state service is out
of its reach), and a standalone state service stopped after the flow first reached it, with
the session's Ray. Fit workers are the session's shared Dask cluster and Ray."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import distributed
import pytest

from headwater import flow, task
from headwater.errors import PreflightFailed
from headwater.runners import DaskTaskRunner, RayTaskRunner
from tests.api.helpers import start_server_process, stop_process
from tests.runners.cluster_processes import Processes, free_port, site_without_headwater
from tests.runners.dask_cluster import shared_dask_address, small_cluster
from tests.runtime.test_recording import cli_json


@pytest.fixture
def fresh_recorder() -> Iterator[None]:
    """This process's recorder starts afresh in the test's HEADWATER_HOME, and closes after."""
    from headwater.api import reset_recorder

    reset_recorder()
    try:
        yield
    finally:
        reset_recorder()


class WritesWhereItRan:
    """A check that writes the pid of every process it runs in, and fails if told to."""

    timeout = 5.0

    def __init__(self, log: Path, problem: str | None = None) -> None:
        self.log, self.problem = log, problem

    def __call__(self) -> str | None:
        with open(self.log, "a") as file:
            file.write(f"{os.getpid()}\n")
        return self.problem


def _pids(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def test_dask_preflight_runs_the_check_once_in_every_worker_process(tmp_path: Path) -> None:
    runner = DaskTaskRunner(shared_dask_address())
    with runner:
        runner.preflight(WritesWhereItRan(tmp_path / "ok"))
        with pytest.raises(PreflightFailed) as failed:
            runner.preflight(WritesWhereItRan(tmp_path / "bad", "no good here"))
        workers = list(runner.client.scheduler_info()["workers"])  # type: ignore[union-attr]
    pids = _pids(tmp_path / "ok")
    assert len(pids) == len(set(pids)) == len(workers) == 2 and os.getpid() not in pids
    assert set(failed.value.problems) == {f"worker {address}" for address in workers}
    assert "2 of 2 Dask workers" in str(failed.value) and "no good here" in str(failed.value)


def test_a_dask_cluster_with_no_workers_yet_passes_the_preflight_at_once(tmp_path: Path) -> None:
    """An adaptive cluster may start empty: there is no one to check, and no waiting for
    workers; those that join later meet any problem in their first task run's engine."""
    with small_cluster(n_workers=0) as cluster, DaskTaskRunner(cluster.scheduler_address) as runner:
        started = time.monotonic()
        runner.preflight(WritesWhereItRan(tmp_path / "ran", "never asked"))
        assert time.monotonic() - started < 5
    assert not (tmp_path / "ran").exists()


@pytest.mark.usefixtures("ray_session")
def test_ray_preflight_runs_the_check_once_on_every_alive_node(tmp_path: Path) -> None:
    import ray

    runner = RayTaskRunner()
    with runner:
        runner.preflight(WritesWhereItRan(tmp_path / "ok"))
        with pytest.raises(PreflightFailed) as failed:
            runner.preflight(WritesWhereItRan(tmp_path / "bad", "no good here"))
    (node,) = [n for n in ray.nodes() if n["Alive"]]
    (pid,) = _pids(tmp_path / "ok")
    assert pid != os.getpid()
    (named,) = failed.value.problems
    assert node["NodeID"][:12] in named and node["NodeManagerAddress"] in named


@task
def inc(x: int) -> int:
    return x + 1


@pytest.mark.usefixtures("fresh_recorder")
def test_fit_dask_workers_change_nothing_a_flow_or_its_tasks_see(tmp_path: Path) -> None:
    @flow(task_runner=DaskTaskRunner(shared_dask_address()))
    def pipeline() -> int:
        return sum(inc.map(range(3)).result())

    with distributed.Client(shared_dask_address()) as client:
        with distributed.get_task_stream(client) as stream:
            assert pipeline() == 6
    # Only the runs' own Dask tasks ran on the workers: the check is out of band.
    assert {row["key"].split("-")[0] for row in stream.data} == {"inc"}
    assert len(stream.data) == 3  # one Dask task per run
    home = Path(os.environ["HEADWATER_HOME"])
    (run,) = cli_json(home, "ls")
    assert run["state_type"] == "COMPLETED" and run["task_run_count"] == 3
    shown = cli_json(home, "show", run["id"])
    assert [[s["name"] for s in t["states"]] for t in shown["task_runs"]] == [
        ["Pending", "Running", "Completed"]
    ] * 3


@pytest.mark.usefixtures("fresh_recorder")
def test_unfit_dask_workers_fail_the_flow_at_once_naming_each_worker_and_why(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_API_CONNECT_TIMEOUT_SECONDS", "1")
    _, address = processes.dask_scheduler(tmp_path / "scheduler.log")
    site = site_without_headwater(tmp_path / "site")
    processes.dask_worker(
        address, "no-headwater", tmp_path / "no-headwater.log", python=[sys.executable, "-S"],
        env={**os.environ, "PYTHONPATH": str(site)}, cwd=site,
    )  # fmt: skip
    proxied = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "no_grpc_proxy")}
    proxied["grpc_proxy"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    processes.dask_worker(address, "behind-proxy", tmp_path / "behind-proxy.log", env=proxied)
    with distributed.Client(address) as client:
        client.wait_for_workers(2, timeout=60)
        workers = {info["name"]: worker for worker, info in client.scheduler_info()["workers"].items()}
    from headwater.api import recorder_target

    url = recorder_target()[0]  # the flow's own server, embedded in this process
    ran = tmp_path / "ran"

    @task
    def touch() -> None:
        ran.touch()

    @flow(task_runner=DaskTaskRunner(address))
    def doomed() -> None:
        touch.submit().wait()

    started = time.monotonic()
    with pytest.raises(PreflightFailed) as failed:
        doomed()
    assert time.monotonic() - started < 20
    problems = failed.value.problems
    assert "cannot import headwater" in problems[f"worker {workers['no-headwater']}"]
    unreachable = problems[f"worker {workers['behind-proxy']}"]
    assert f"the state service at {url} is unreachable" in unreachable
    assert "HEADWATER_API_URL" in unreachable and "--host 0.0.0.0" in unreachable
    assert not ran.exists()
    home = Path(os.environ["HEADWATER_HOME"])
    (run,) = cli_json(home, "ls")
    assert run["state_type"] == "CRASHED" and run["task_run_count"] == 0
    message = cli_json(home, "show", run["id"])["states"][-1]["message"]
    assert workers["no-headwater"] in message and url in message


@pytest.mark.usefixtures("ray_session", "fresh_recorder")
def test_ray_nodes_that_cannot_reach_the_state_service_fail_the_flow_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from headwater.api import get_recorder

    server, url = start_server_process(tmp_path / "server-home", "--token", "preflight-token")
    monkeypatch.setenv("HEADWATER_API_URL", url)
    monkeypatch.setenv("HEADWATER_API_TOKEN", "preflight-token")
    monkeypatch.setenv("HEADWATER_API_CONNECT_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("HEADWATER_RECORDER_GRACE_SECONDS", "1")
    try:
        get_recorder()  # this process reached the server (its own preflight passed) ...
    finally:
        stop_process(server)  # ... which then went away: the workers cannot reach it
    ran = tmp_path / "ran"

    @task
    def touch() -> None:
        ran.touch()

    @flow(task_runner=RayTaskRunner())
    def doomed() -> None:
        touch.submit().wait()

    started = time.monotonic()
    with pytest.raises(PreflightFailed) as failed:
        doomed()
    assert time.monotonic() - started < 30
    (node,) = [n for n in ray.nodes() if n["Alive"]]
    (named, problem) = next(iter(failed.value.problems.items()))
    assert named == f"node {node['NodeID'][:12]} at {node['NodeManagerAddress']}"
    assert f"the state service at {url} is unreachable" in problem
    assert "preflight-token" not in str(failed.value)
    assert not ran.exists()
