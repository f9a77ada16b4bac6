"""Workers end to end with real processes: a standalone `headwater server start`, worker
processes dialling out to it, each run in a subprocess of its worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.api import StateClient, reset_recorder
from headwater.api.deploy_client import stream_item

from ..api.helpers import start_server_process, stop_process
from .helpers import wait_for

TOKEN = "worker-test-token"
FLOWS = textwrap.dedent(
    """
    import time
    from pathlib import Path
    from headwater import flow

    @flow
    def work(i: int, seconds: float = 0.1) -> int:
        time.sleep(seconds)
        return i

    @flow
    def hold(marker: str) -> None:
        Path(marker).write_text("started")
        time.sleep(600)
    """
)
WORKER = "from headwater.deploy.worker import Worker, serve_forever; import sys; " \
         "serve_forever(Worker(pool=sys.argv[1], name=sys.argv[2], lease_seconds=2.0, limit=int(sys.argv[3])))"



@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    proc, url = start_server_process(tmp_path / "server-home", "--token", TOKEN)
    monkeypatch.setenv("HEADWATER_API_URL", url)
    monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
    reset_recorder()
    try:
        yield url
    finally:
        reset_recorder()
        stop_process(proc)


def _deploy(tmp_path: Path, fn: str, pool: str, **options: Any) -> str:
    from headwater.deploy.deployments import deploy, to_deployment
    from headwater.deploy.entrypoints import load_flow

    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "flows.py").write_text(FLOWS)
    flow = load_flow(f"{tmp_path / 'code' / 'flows.py'}:{fn}")
    return deploy(to_deployment(flow, "d", **options), work_pool_name=pool)[0].name


def _worker(tmp_path: Path, pool: str, name: str, limit: int = 10) -> subprocess.Popen[bytes]:
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - the child holds it
    return subprocess.Popen([sys.executable, "-c", WORKER, pool, name, str(limit)], stdout=log,
                            stderr=subprocess.STDOUT, env=os.environ.copy())  # fmt: skip


def _started_by(client: StateClient, run_id: Any) -> str:
    pending = [s.message or "" for s in client.read_history(run_id) if s.type == "PENDING"]
    return next((m.split("'")[1] for m in pending if m.startswith("started by worker")), "?")


def test_two_workers_run_50_runs_within_a_pool_limit_of_3_each_exactly_once(tmp_path: Path, server: str) -> None:
    from headwater import run_deployment
    from headwater.deploy.connection import deploy_client

    with deploy_client() as client:
        client.create_pool("pool", concurrency_limit=3)
    name = _deploy(tmp_path, "work", "pool")
    workers = [_worker(tmp_path, "pool", f"w{i}") for i in (1, 2)]
    try:
        with deploy_client() as client:
            wait_for(lambda: len(client.list_workers()) == 2, 30, "both workers")
        runs = [run_deployment(name, parameters={"i": i}, timeout=0, idempotency_key=f"batch-{i}").id for i in range(50)]
        with StateClient(server, token=TOKEN) as reader:
            wait_for(lambda: all(reader.read_flow_run(r).state_type == "COMPLETED" for r in runs), 240, "50 runs")
            infos = [reader.read_flow_run(r) for r in runs]
            histories = [[s.type for s in reader.read_history(r)] for r in runs]
            by = {_started_by(reader, r) for r in runs}
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
    assert all(h.count("RUNNING") == 1 and h.count("PENDING") >= 1 for h in histories)  # each run ran exactly once
    assert by == {"w1", "w2"}  # spread over both workers
    edges = sorted([(i.start_time, 1) for i in infos] + [(i.end_time, -1) for i in infos])
    most, now = 0, 0
    for _, step in edges:
        now += step
        most = max(most, now)
    assert most <= 3, f"{most} runs of the pool ran at once, over its limit of 3"


def test_a_killed_worker_crashes_its_run_and_its_unstarted_claim_goes_to_another(tmp_path: Path, server: str) -> None:
    from headwater import run_deployment
    from headwater.deploy.connection import deploy_client

    with deploy_client() as client:
        client.create_pool("pool")
    name = _deploy(tmp_path, "hold", "pool")
    marker = tmp_path / "started"
    doomed = _worker(tmp_path, "pool", "doomed", limit=1)
    with deploy_client() as client:
        wait_for(lambda: len(client.list_workers()) == 1, 30, "the first worker")
        held = run_deployment(name, parameters={"marker": str(marker)}, timeout=0).id
        wait_for(marker.exists, 60, "the held run to start")
        # A second "worker" that claims a run and dies before starting it: a bare stream.
        call = client.worker_stream("claims-and-dies", pool="pool", lease_seconds=1.0)
        items = iter(call)
        assert stream_item(next(items))[0] == "ready"
        orphan = run_deployment(name, parameters={"marker": str(tmp_path / "orphan")}, timeout=0).id
        kind, claimed = stream_item(next(items))
        assert kind == "run" and claimed.flow_run_id == orphan  # type: ignore[union-attr]
        call.cancel()
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        rescuer = _worker(tmp_path, "pool", "rescuer", limit=1)
        try:
            with StateClient(server, token=TOKEN) as reader:
                wait_for(lambda: reader.read_flow_run(held).state_type == "CRASHED", 30, "the killed worker's run to crash")
                wait_for((tmp_path / "orphan").exists, 60, "the orphaned claim to start on the other worker")
                assert _started_by(reader, orphan) == "rescuer"
                crash = reader.read_history(held)[-1].message or ""
            assert "doomed" in crash and "stopped heartbeating" in crash
            client.delete_deployment(name)  # nothing left queued
        finally:
            rescuer.send_signal(signal.SIGKILL)
            rescuer.wait(10)


def test_cancelling_a_run_a_worker_started_stops_its_process_and_ends_it_cancelled(tmp_path: Path, server: str) -> None:
    from headwater import cancel_flow_run, run_deployment
    from headwater.deploy.connection import deploy_client

    with deploy_client() as client:
        client.create_pool("pool")
    name = _deploy(tmp_path, "hold", "pool")
    marker = tmp_path / "started"
    worker = _worker(tmp_path, "pool", "w", limit=1)
    try:
        run = run_deployment(name, parameters={"marker": str(marker)}, timeout=0).id
        wait_for(marker.exists, 60, "the run to start")
        started = time.monotonic()
        cancel_flow_run(run)
        with StateClient(server, token=TOKEN) as reader:
            wait_for(lambda: reader.read_flow_run(run).state_type == "CANCELLED", 60, "the run to end CANCELLED")
            took = time.monotonic() - started
            pid = reader.read_flow_run(run).pid
        assert took < 30  # the worker's grace (10 s), then its kill, well before the service's deadline
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the run's process to be gone")
            os.kill(pid, 0)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


def test_a_deployment_from_a_git_repository_runs_the_commit_it_names(tmp_path: Path, server: str) -> None:
    from headwater import run_deployment
    from headwater.deploy.connection import deploy_client
    from headwater.deploy.deployments import deploy, to_deployment
    from headwater.deploy.sources import GitSource
    from headwater.runtime.flows import Flow

    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    body = 'from pathlib import Path\nfrom headwater import flow\n\n@flow\ndef which(out: str) -> None:\n    Path(out).write_text("{v}")\n'
    commits = []
    for version in ("first", "second"):
        (repo / "flows.py").write_text(body.format(v=version))
        subprocess.run(["git", "init", "-q"] if version == "first" else ["true"], cwd=repo, check=True, env=env)
        subprocess.run(["git", "add", "flows.py"], cwd=repo, check=True, env=env)
        subprocess.run(["git", "commit", "-q", "-m", version], cwd=repo, check=True, env=env)
        commits.append(subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, env=env,
                                      capture_output=True, text=True).stdout.strip())  # fmt: skip
    with deploy_client() as client:
        client.create_pool("pool")
    flow = Flow.from_source(GitSource(str(repo), commit=commits[0]), "flows.py:which")
    (dep,) = deploy(to_deployment(flow, "pinned"), work_pool_name="pool")
    assert dep.source == {"kind": "git", "url": str(repo), "branch": None, "commit": commits[0]}
    worker = _worker(tmp_path, "pool", "w", limit=1)
    try:
        out = tmp_path / "which.txt"
        run = run_deployment(dep.name, parameters={"out": str(out)}, timeout=120)
        assert run.state_type == "COMPLETED", run
        assert out.read_text() == "first"  # the pinned commit, not the branch's tip
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
