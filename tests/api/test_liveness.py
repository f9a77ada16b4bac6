"""Liveness under faults, with real processes: a live run is never reaped, a run the server
declared crashed learns it, and a SIGKILLed flow's run is reaped by the next process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.api import ServerConfigError, StateClient, StateServer

from .helpers import PYTHON, start_server_process, stop_process

#: Clients heartbeat this often in these tests (the default is 5 s), so a timeout of a second
#: or two is legal and a test waits seconds, not minutes.
FAST = {"HEADWATER_HEARTBEAT_INTERVAL_SECONDS": "0.25"}


class Blackhole:
    """A TCP proxy on 127.0.0.1 in front of `port`.

    `cut()` stops forwarding in both directions and closes nothing: to both ends every
    connection looks open and silent, as behind a dropped route or a middlebox that forgot it,
    and TCP itself never notices. Connections made during the cut are held the same way.
    `restore(old_connections=...)` forwards again, on the connections made before the cut too
    (the route came back), or only on later ones (the middlebox forgot the old ones for good).
    """

    def __init__(self, port: int) -> None:
        self._upstream = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"grpc://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._cut = False
        self._epoch = 0  # of connections accepted from now on
        self._dead_upto = -1  # connections of this epoch and older never forward again
        self._closed = False
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self._cut, self._epoch = True, self._epoch + 1

    def restore(self, *, old_connections: bool) -> None:
        with self._lock:
            if not old_connections:
                self._dead_upto = self._epoch - 1
            self._cut = False

    def close(self) -> None:
        self._closed = True
        for sock in self._sockets:
            sock.close()

    def _passes(self, epoch: int) -> bool:
        with self._lock:
            return not self._cut and epoch > self._dead_upto

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            self._sockets += [client, upstream]
            epoch = self._epoch
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, epoch), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, epoch: int) -> None:
        try:
            while True:
                data = src.recv(65536)
                while not self._passes(epoch):  # hold it: nothing forwarded, nothing closed
                    if self._closed:
                        return
                    time.sleep(0.02)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
        except OSError:
            return


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HEADWATER_HOME": str(home), **FAST, **extra}
    if "HEADWATER_API_URL" not in extra:
        env.pop("HEADWATER_API_URL", None)
    return env


def _flow_process(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "running":
        proc.kill()
        raise AssertionError(f"flow did not start: {line!r} {proc.communicate()[1]}")
    return proc


def _wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def _runs(env: dict[str, str]) -> list[dict[str, Any]]:
    out = subprocess.run(
        [PYTHON, "-m", "headwater.cli", "runs", "ls", "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )
    runs: list[dict[str, Any]] = json.loads(out.stdout)
    return runs


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    proc, url = start_server_process(tmp_path / "server", "--heartbeat-timeout", "1.5", env=FAST)
    yield url
    stop_process(proc)


PARTITIONED = """
import pathlib, sys, time
from headwater import RecordingError, flow, task

@task
def work(i: int) -> int:
    return i

@flow
def partitioned() -> int:
    print("running", flush=True)
    while not pathlib.Path(sys.argv[1]).exists():
        time.sleep(0.02)
    return sum(work.map(range(4)).result())

try:
    partitioned()
except RecordingError as exc:
    print("kept", exc.state.result(), flush=True)  # the result is not lost with the record
    raise
"""


@pytest.mark.parametrize(
    ("old_connections", "finish_while_cut"),
    [(True, False), (False, False), (True, True)],
    ids=["route-back", "connection-forgotten", "finished-while-cut-off"],
)
def test_a_run_declared_crashed_while_cut_off_fails_its_flow_instead_of_exiting_0(
    tmp_path: Path, server: str, old_connections: bool, finish_while_cut: bool
) -> None:
    proxy = Blackhole(int(server.rsplit(":", 1)[1]))
    gate = tmp_path / "go"
    proc = subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(PARTITIONED), str(gate)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=_env(tmp_path, HEADWATER_API_URL=proxy.url),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
        with StateClient(server, retry_for=5) as client:
            _wait_for(lambda: [r.state_type for r in client.list_flow_runs()] == ["RUNNING"])
            proxy.cut()
            if finish_while_cut:  # its Completed is older than the sweeper's Crashed
                gate.write_text("go")
            _wait_for(lambda: client.list_flow_runs()[0].state_type == "CRASHED")
            proxy.restore(old_connections=old_connections)
            gate.write_text("go")
            out, err = proc.communicate(timeout=40)
            (run,) = client.list_flow_runs()
            assert run.state_type == "CRASHED"  # the late Completed was refused
    finally:
        proc.kill()
        proxy.close()
    assert proc.returncode == 1, err
    assert "kept 6" in out
    assert "RecordingError" in err and "was declared Crashed by the state service" in err
    assert "heartbeat lost" in err and "its result is not recorded" in err and str(run.id) in err


def test_a_heartbeat_timeout_below_three_client_intervals_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path)}
    env.pop("HEADWATER_HEARTBEAT_INTERVAL_SECONDS", None)
    proc = subprocess.run(
        [PYTHON, "-m", "headwater.cli", "server", "start", "--port", "0", "--heartbeat-timeout", "2"],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert "heartbeat timeout 2 s is too short" in proc.stderr and "15 or more" in proc.stderr
    with pytest.raises(ServerConfigError, match="clients heartbeat every 0.5 s"):
        StateServer(tmp_path, port=0, heartbeat_timeout=1.0, heartbeat_interval=0.5)
    StateServer(tmp_path, port=0, heartbeat_timeout=1.5, heartbeat_interval=0.5)  # at the floor


def test_heartbeats_keep_a_flow_alive_well_past_a_small_heartbeat_timeout(tmp_path: Path, server: str) -> None:
    code = """
    import time
    from headwater import flow

    @flow
    def patient() -> int:
        print("running", flush=True)
        time.sleep(4)  # over twice the server's 1.5 s heartbeat timeout
        return 1

    patient()
    """
    proc = _flow_process(code, _env(tmp_path, HEADWATER_API_URL=server))
    _out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err
    with StateClient(server, retry_for=5) as client:
        (run,) = client.list_flow_runs()
        assert run.state_type == "COMPLETED"
        assert [s.type for s in client.read_history(run.id)] == ["PENDING", "RUNNING", "COMPLETED"]


BLOCKED = """
import time
from headwater import flow, task

@task
def stuck() -> None:
    time.sleep(60)

@flow
def {name}() -> None:
    future = stuck.submit()
    time.sleep(0.3)  # the task run is RUNNING and recorded
    print("running", flush=True)
    future.wait()

{name}()
"""


NEXT = """
from headwater import flow

@flow
def next_one() -> int:
    return 1

next_one()
"""


def _run_next(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Run a short flow on the home (its embedded server opens it), then list the runs."""
    result = subprocess.run([PYTHON, "-c", NEXT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return {r["flow_name"]: r for r in _runs(env)}


def test_the_next_process_on_the_home_reaps_a_killed_flows_run_at_once(tmp_path: Path) -> None:
    env = _env(tmp_path, HEADWATER_HEARTBEAT_TIMEOUT_SECONDS="2")
    killed = _flow_process(BLOCKED.format(name="killed"), env)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=10)
    time.sleep(2.5)  # its last heartbeat is now older than the timeout
    runs = _run_next(env)  # a short flow: its own sweeper never waits out a timeout
    assert {name: r["state_type"] for name, r in runs.items()} == {
        "killed": "CRASHED", "next_one": "COMPLETED",
    }  # fmt: skip
    shown = subprocess.run(
        [PYTHON, "-m", "headwater.cli", "runs", "show", runs["killed"]["id"], "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )
    detail = json.loads(shown.stdout)
    assert "heartbeat lost" in detail["states"][-1]["message"]
    assert [t["state_type"] for t in detail["task_runs"]] == ["CRASHED"]

    alive = _flow_process(BLOCKED.format(name="alive"), env)  # beats through its own server
    try:
        time.sleep(2.5)
        runs = _run_next(env)
        assert runs["alive"]["state_type"] == "RUNNING"
    finally:
        alive.kill()
        alive.communicate()
