"""Dask schedulers, Dask workers and Ray heads started as separate processes, for the tests of
what a runner does when its workers are unfit or its head goes away. `Processes` owns what a
test started and kills only that, by process id (never `ray stop`, which stops every Ray on
the machine, the session's shared one included)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on port {port} within {timeout} s")


def site_without_headwater(where: Path) -> Path:
    """A directory holding everything installed beside headwater except headwater itself
    (links), for `python -S` with it on PYTHONPATH: the interpreter finds Dask and the rest,
    never headwater (-S also skips the .pth file of an editable install)."""
    import distributed

    site = Path(distributed.__file__).resolve().parents[1]
    where.mkdir(parents=True, exist_ok=True)
    for entry in site.iterdir():
        if not entry.name.startswith(("headwater", "__editable__")):
            (where / entry.name).symlink_to(entry)
    env = {**os.environ, "PYTHONPATH": str(where)}
    probe = subprocess.run([PYTHON, "-S", "-c", "import headwater"], env=env, capture_output=True, cwd=where)
    assert probe.returncode != 0, "headwater is importable without its site: the test would prove nothing"
    return where


class Processes:
    """The processes a test started; `kill_all()` SIGKILLs each with its descendants."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              log: Path | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        out = open(log, "wb") if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append(proc)
        return proc

    def dask_scheduler(self, log: Path) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        proc = self.start(
            [PYTHON, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"],
            log=log,
        )  # fmt: skip
        wait_for_port(port, proc, "the Dask scheduler")
        return proc, f"tcp://127.0.0.1:{port}"

    def dask_worker(self, address: str, name: str, log: Path, *, python: list[str] | None = None,
                    env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        return self.start(
            [*(python or [PYTHON]), "-m", "distributed.cli.dask_worker", address, "--name", name,
             "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
            env=env, cwd=cwd, log=log,
        )  # fmt: skip

    def ray_head(self, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
        """`ray start --head --block` in a session of its own; returns it and its address."""
        port = free_port()
        temp_dir = tempfile.mkdtemp(prefix="hwray", dir="/tmp")  # Ray's socket paths must be short
        proc = self.start(
            [str(Path(PYTHON).parent / "ray"), "start", "--head", "--block", "--port", str(port),
             "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false",
             "--disable-usage-stats", "--temp-dir", temp_dir,
             "--object-store-memory", str(100 * 1024 * 1024)],
            env=env, log=log,
        )  # fmt: skip
        wait_for_port(port, proc, "the Ray head", timeout=90)
        return proc, f"127.0.0.1:{port}"

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL `proc`, its process group (it leads a session of its own) and descendants."""
        try:
            family = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for child in family:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(30)

    def kill_all(self) -> None:
        while self.started:
            self.kill(self.started.pop())
