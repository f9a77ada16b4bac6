"""Several real processes: a standalone server, recording clients, kills and restarts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from headwater.api import RecordingError, StateClient
from headwater.api.client import Target
from headwater.api.recorder import Recorder, _GrpcSink

from .helpers import PYTHON, flow, start_server_process, state, stop_process, task

CLIENT = str(Path(__file__).with_name("recording_client.py"))
TOKEN = "process-token"


def _client_env(url: str) -> dict[str, str]:
    return {**os.environ, "HEADWATER_API_URL": url, "HEADWATER_API_TOKEN": TOKEN}


def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_two_client_processes_record_into_one_standalone_server(home: Path) -> None:
    server, url = start_server_process(home, "--token", TOKEN)
    try:
        clients = [
            subprocess.Popen([PYTHON, CLIENT, "complete", "50"], stdout=subprocess.PIPE, text=True, env=_client_env(url))
            for _ in range(2)
        ]
        ids = [uuid.UUID(c.communicate(timeout=60)[0].strip()) for c in clients]
        assert all(c.returncode == 0 for c in clients)
        with StateClient(url, token=TOKEN) as c:
            for run_id in ids:
                info = c.read_flow_run(run_id)
                assert (info.state_type, info.task_run_count) == ("COMPLETED", 50)
                tasks = c.list_task_runs(run_id)
                assert {t.state_type for t in tasks} == {"COMPLETED"}
                assert [s.type for s in c.read_history(tasks[0].id)] == ["PENDING", "RUNNING", "COMPLETED"]
    finally:
        stop_process(server)
    assert server.returncode == 0  # SIGTERM is a clean shutdown


def test_a_killed_client_is_marked_crashed_by_the_sweeper(home: Path) -> None:
    server, url = start_server_process(
        home, "--token", TOKEN, "--heartbeat-timeout", "1",
        env={"HEADWATER_HEARTBEAT_INTERVAL_SECONDS": "0.2"},  # the client beats every 0.2 s
    )
    try:
        proc = subprocess.Popen([PYTHON, CLIENT, "hang", "3"], stdout=subprocess.PIPE, text=True, env=_client_env(url))
        assert proc.stdout is not None
        run_id = uuid.UUID(proc.stdout.readline().strip())
        with StateClient(url, token=TOKEN) as c:
            time.sleep(1.5)  # heartbeats keep it alive past the timeout
            assert c.read_flow_run(run_id).state_type == "RUNNING"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            _wait_for(lambda: c.read_flow_run(run_id).state_type == "CRASHED", timeout=8)
            crash = c.read_history(run_id)[-1]
            assert "heartbeat" in (crash.message or "")
            assert {t.state_type for t in c.list_task_runs(run_id)} == {"CRASHED"}
    finally:
        stop_process(server)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_killed_and_restarted_server_loses_nothing(home: Path) -> None:
    port = _free_port()
    server, url = start_server_process(home, "--token", TOKEN, "--port", str(port))
    recorder = Recorder(_GrpcSink(Target.resolve(url, TOKEN, None)), grace=30)
    try:
        run = flow()
        recorder.flow_run_created(run)
        recorder.state_changed(state(run.id, "RUNNING"))
        tasks = [task(run.id) for _ in range(20)]
        for t in tasks[:10]:
            recorder.task_run_created(t)
            recorder.state_changed(state(t.id, "PENDING", "task"))
        recorder.flush(timeout=10)
        server.send_signal(signal.SIGKILL)
        server.wait()
        for t in tasks[:10]:  # produced while the server is dead
            recorder.state_changed(state(t.id, "RUNNING", "task"))
            recorder.state_changed(state(t.id, "COMPLETED", "task"))
        for t in tasks[10:]:
            recorder.task_run_created(t)
            recorder.state_changed(state(t.id, "PENDING", "task"))
        recorder.state_changed(state(run.id, "COMPLETED"))
        time.sleep(0.5)  # let the recorder notice and buffer
        server, url = start_server_process(home, "--token", TOKEN, "--port", str(port))
        recorder.flush(timeout=20)
        with StateClient(url, token=TOKEN) as c:
            assert c.read_flow_run(run.id).state_type == "COMPLETED"
            assert len(c.list_task_runs(run.id)) == 20
            for t in tasks[:10]:
                assert [s.type for s in c.read_history(t.id)] == ["PENDING", "RUNNING", "COMPLETED"]
            for t in tasks[10:]:
                assert [s.type for s in c.read_history(t.id)] == ["PENDING"]
    finally:
        recorder.close(timeout=5)
        stop_process(server)


def test_unreachable_server_past_the_grace_period_names_the_unrecorded_runs() -> None:
    url = f"grpc://127.0.0.1:{_free_port()}"
    recorder = Recorder(_GrpcSink(Target.resolve(url, TOKEN, None)), grace=0.5)
    try:
        run = flow()
        recorder.flow_run_created(run)
        recorder.state_changed(state(run.id, "RUNNING"))
        with pytest.raises(RecordingError) as err:
            recorder.flush(timeout=10)
        assert run.id in err.value.run_ids and str(run.id) in str(err.value)
        recorder.flush(timeout=5)  # reported once; nothing new is missing
    finally:
        recorder.close(timeout=1)


def test_server_start_refuses_a_public_address_without_a_token(home: Path) -> None:
    env = {**os.environ, "HEADWATER_HOME": str(home)}
    env.pop("HEADWATER_API_TOKEN", None)
    proc = subprocess.run(
        [PYTHON, "-m", "headwater.cli", "server", "start", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert proc.returncode == 1 and "without a token" in proc.stderr and proc.stdout == ""
