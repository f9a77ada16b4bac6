"""Schedules end to end: a standalone server's scheduler makes the runs, a worker runs them;
a restart of the server does not switch schedules off, and no tick runs twice."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from headwater.api import StateClient
from headwater.api.schedules import Interval

from ..api.helpers import start_server_process, stop_process
from .helpers import wait_for
from .test_workers import TOKEN, _deploy, _worker, server  # noqa: F401 - the fixture


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scheduled(url: str) -> list[tuple[float, str]]:
    with StateClient(url, token=TOKEN) as reader:
        runs = reader.list_flow_runs()
    return sorted((r.created, r.state_type) for r in runs if r.flow_name == "work" and r.name.startswith("scheduled-"))


def test_a_schedule_runs_on_a_worker_each_tick_once_across_a_server_restart(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from headwater.api import reset_recorder
    from headwater.deploy.connection import deploy_client

    port, home = _free_port(), tmp_path / "server-home"
    proc, url = start_server_process(home, "--token", TOKEN, "--port", str(port))
    monkeypatch.setenv("HEADWATER_API_URL", url)
    monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
    reset_recorder()
    worker: subprocess.Popen[bytes] | None = None
    try:
        with deploy_client() as client:
            client.create_pool("pool")
        name = _deploy(tmp_path, "work", "pool", schedules=[Interval(timedelta(seconds=1), overlap="allow_all", parameters={"i": 1})])
        worker = _worker(tmp_path, "pool", "w")
        with StateClient(url, token=TOKEN) as reader:
            wait_for(lambda: sum(1 for _, s in _scheduled(url) if s == "COMPLETED") >= 3, 60, "three ticks run")
        stop_process(proc)  # the server goes away, and comes back on the same home and port
        time.sleep(2.5)
        proc, _ = start_server_process(home, "--token", TOKEN, "--port", str(port))
        wait_for(lambda: sum(1 for _, s in _scheduled(url) if s == "COMPLETED") >= 7, 90, "ticks after the restart")
        with StateClient(url, token=TOKEN) as reader:
            runs = [r for r in reader.list_flow_runs() if r.name.startswith("scheduled-")]
            keys = [r.name for r in runs]
            assert len(keys) == len(set(keys))  # one run per tick, named by it
            with deploy_client() as client:
                (schedule,) = client.list_schedules(name)
            assert schedule.active and schedule.superseded is None
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        reset_recorder()
        stop_process(proc)
