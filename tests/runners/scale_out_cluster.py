"""Clusters as processes of their own, for the scale-out test: a standalone state server
(`headwater server start`), a Dask cluster (`dask scheduler`, `dask worker`) and a Ray cluster
(`ray start --head`, `ray start --address`), each started with its command-line tool.

`Processes` owns everything it starts. Each process leads a session (and process group) of its
own, its output goes to a log file, and readiness is a line in that log. `stop()` ends every
process tree it started and only those, never by name (`ray stop` would end every Ray on the
machine): SIGTERM to each group, SIGKILL to what is left after a grace period (at once for a
Ray node, which would drain for 30 s on SIGTERM), then SIGKILL by pid to any descendant that
left its group; it returns the processes that survived all of that, which should be none.

Cluster processes get the environment minus the state service settings (`HEADWATER_API_*`):
the address and token travel with each task, as they do for any cluster. Ray gets a temporary
directory and auth token of its own (a Ray 2.5x cluster refuses a node or driver without the
token; `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN_PATH` tell each of them where it is), and
ports picked free here, so it stays apart from any other Ray on the machine, including a local
one the test session started in its own process.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BIN = Path(sys.executable).parent
#: How long a process may take to say it is ready. Generous: a loaded two-core machine starts
#: a Ray node in 5-15 s; a failing start ends the wait at once (the process exits).
READY_TIMEOUT = 120.0
#: How long SIGTERM is given before SIGKILL.
STOP_GRACE = 5.0
RAY_OBJECT_STORE = 100 * 1024 * 1024


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (all held open while picking)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cluster_env(**extra: str) -> dict[str, str]:
    """This environment without the state service's settings or a Ray address, plus `extra`."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("HEADWATER_API_") and k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")
    }  # fmt: skip
    return {**env, **extra}


@dataclass
class Started:
    """One process `Processes` started, the leader of its own process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    graceful: bool = True  # SIGTERM first, SIGKILL only after `STOP_GRACE`

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = READY_TIMEOUT) -> re.Match[str]:
        """The first match of `pattern` in this process's output, once it appears."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def tree(self) -> list[psutil.Process]:
        """This process and its live descendants."""
        try:
            leader = psutil.Process(self.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


@dataclass
class Processes:
    """Everything started here, stopped together by `stop()`."""

    logs: Path
    started: list[Started] = field(default_factory=list)
    temp_dirs: list[Path] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], *, graceful: bool = True) -> Started:
        log = self.logs / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip
        started = Started(name, proc, log, graceful)
        self.started.append(started)
        return started

    def pids(self) -> set[int]:
        """Every live process started here and every descendant of one."""
        return {p.pid for s in self.started for p in s.tree()}

    def stop(self) -> list[psutil.Process]:
        """End every process tree started here; returns the processes still alive after."""
        trees = [p for s in self.started for p in s.tree()]
        for s in self.started:
            _signal_group(s.pid, signal.SIGTERM if s.graceful else signal.SIGKILL)
        deadline = time.monotonic() + STOP_GRACE
        for s in self.started:
            try:
                s.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for s in self.started:
            _signal_group(s.pid, signal.SIGKILL)
            s.proc.wait()
        for p in trees:  # descendants that left their group
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(trees, timeout=10)
        for path in self.temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        return [p for p in alive if _alive(p)]

    def temp_dir(self, prefix: str) -> Path:
        """A directory removed by `stop()`; short, since Ray puts unix sockets under it."""
        path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.temp_dirs.append(path)
        return path


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def start_state_server(procs: Processes, home: Path, token: str) -> Started:
    """`headwater server start --token TOKEN` on 127.0.0.1, a free port; read its URL with
    `state_server_url`."""
    env = cluster_env(HEADWATER_HOME=str(home))
    argv = [str(BIN / "headwater"), "server", "start", "--host", "127.0.0.1", "--port", "0", "--token", token]
    return procs.start("headwater-server", argv, env)


def state_server_url(server: Started) -> str:
    return server.wait_for(r"grpcs?://127\.0\.0\.1:\d+").group(0)


@dataclass(frozen=True)
class DaskCluster:
    address: str  # the scheduler's, tcp://127.0.0.1:PORT
    workers: list[Started]


def start_dask(procs: Processes, workers: int, home: Path) -> DaskCluster:
    """A `dask scheduler` and `workers` `dask worker` processes (one thread each), returned
    once every worker has registered with the scheduler. Lost workers' tasks are not run again
    (`allowed-failures` 0), as on clusters the Dask runner starts itself."""
    env = cluster_env(HEADWATER_HOME=str(home), DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    scheduler = procs.start(
        "dask-scheduler",
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0"],
        env,
    )
    address = scheduler.wait_for(r"Scheduler at:\s+(tcp://127\.0\.0\.1:\d+)").group(1)
    started = [
        procs.start(
            f"dask-worker-{i}",
            [str(BIN / "dask"), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
             "--dashboard-address", ":0", "--name", f"worker-{i}"],
            env,
        )  # fmt: skip
        for i in range(workers)
    ]
    for worker in started:
        worker.wait_for(r"Registered to:")
    return DaskCluster(address, started)


def ray_env(token_path: Path, **extra: str) -> dict[str, str]:
    """The environment of every process of the Ray cluster, its drivers included."""
    return cluster_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_path), **extra)


@dataclass(frozen=True)
class RayCluster:
    address: str  # the head's, 127.0.0.1:PORT
    client_address: str  # its Ray Client server's, ray://127.0.0.1:PORT
    token_path: Path  # what a driver needs (see `ray_env`)
    nodes: list[Started]


def start_ray(procs: Processes, home: Path) -> RayCluster:
    """`ray start --head` and a second node, `ray start --address`, one CPU each, both on
    this machine, returned once both are up. Only the head takes `--temp-dir`; the second node
    uses the head's."""
    temp = procs.temp_dir("hw-ray-")
    token_path = temp / "auth_token"
    token_path.write_text(secrets.token_hex(32))
    env = ray_env(token_path, HEADWATER_HOME=str(home))
    ports = iter(free_ports(15))
    common = ["--block", "--num-cpus", "1", "--object-store-memory", str(RAY_OBJECT_STORE),
              "--disable-usage-stats"]  # fmt: skip

    def node_ports() -> list[str]:
        names = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")  # fmt: skip
        return [item for name in names for item in (name, str(next(ports)))]

    gcs_port, client_port = next(ports), next(ports)
    head = procs.start(
        "ray-head",
        [str(BIN / "ray"), "start", "--head", "--port", str(gcs_port), "--temp-dir", str(temp),
         "--include-dashboard=false", "--dashboard-port", str(next(ports)),
         "--ray-client-server-port", str(client_port), *node_ports(), *common],
        env, graceful=False,
    )  # fmt: skip
    head.wait_for(r"Ray runtime started")
    address = f"127.0.0.1:{gcs_port}"
    node = procs.start(
        "ray-node", [str(BIN / "ray"), "start", "--address", address, *node_ports(), *common], env,
        graceful=False,
    )
    node.wait_for(r"Ray runtime started")
    return RayCluster(address, f"ray://127.0.0.1:{client_port}", token_path, [head, node])


#: How a flow file marks the line of output that holds its result (JSON).
RESULT_MARK = "RESULT "


class FlowFileFailed(AssertionError):
    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def run_flow_file(script: Path, *args: str, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run `script` with `args` as a flow process; the JSON it printed after `RESULT_MARK`.
    (A Ray driver's output also carries its workers' lines, at any time.)"""
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if result.returncode != 0 or not lines:
        message = f"{script.name} {' '.join(args[:2])} failed ({result.returncode}):\n{result.stderr[-6000:]}"
        raise FlowFileFailed(message, result.stderr)
    return dict(json.loads(lines[-1].removeprefix(RESULT_MARK)))
