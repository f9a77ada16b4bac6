"""Concurrency slots across real processes: the limit holds under a race of subprocesses, a
SIGKILLed holder's slot comes back within its lease time, and a restarted server keeps its
leases and its clients' waiting requests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from headwater.api import Lease, SlotClient, StateServer

from .conftest import TOKEN

PYTHON = sys.executable

_HOLDER = textwrap.dedent("""
    import os, sys, time
    from headwater.api import Holder, SlotClient
    url, log, rounds, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    with SlotClient(url, token=os.environ["TOKEN"], lease_seconds=float(os.environ.get("LEASE", "30"))) as c:
        for i in range(rounds):
            with c.acquire(["warehouse"], timeout=60, holder=Holder(f"load-{i}")) as lease:
                entered = time.time()
                if hold < 0:  # hold forever: the parent kills this process
                    print(lease.lease_id, flush=True)
                    time.sleep(600)
                time.sleep(hold)
                exited = time.time()
            with open(log, "a") as f:
                f.write(f"{entered!r} {exited!r}\\n")
""")


def _spawn(url: str, log: Path, rounds: int, hold: float, lease: float = 30.0) -> subprocess.Popen[str]:
    env = {**os.environ, "TOKEN": TOKEN, "LEASE": str(lease)}
    return subprocess.Popen([PYTHON, "-c", _HOLDER, url, str(log), str(rounds), str(hold)],
                            stdout=subprocess.PIPE, text=True, env=env)


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_four_processes_never_hold_more_than_the_limit(server: StateServer, tmp_path: Path) -> None:
    log = tmp_path / "holds.log"
    with SlotClient(server.url, token=TOKEN) as admin:
        admin.create_limit("warehouse", 3)
        procs = [_spawn(server.url, log, 14, 0.01) for _ in range(4)]
        sampled = []
        while any(p.poll() is None for p in procs):
            sampled.append(admin.read_limit("warehouse").active)
            time.sleep(0.002)
        assert all(p.returncode == 0 for p in procs)
        intervals = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
        assert len(intervals) == 56
        assert _most_at_once(intervals) <= 3  # type: ignore[arg-type]
        assert max(sampled) <= 3 and 3 in sampled, sampled
        assert admin.read_limit("warehouse").active == 0


def test_a_killed_holder_frees_its_slot_within_its_lease_time(server: StateServer, tmp_path: Path) -> None:
    with SlotClient(server.url, token=TOKEN) as waiter:
        waiter.create_limit("warehouse", 1)
        holder = _spawn(server.url, tmp_path / "unused.log", 1, -1, lease=1.0)
        assert holder.stdout is not None
        lease_id = holder.stdout.readline().strip()
        assert waiter.read_limit("warehouse").holders[0].lease_id == lease_id
        granted: list[float] = []
        thread = threading.Thread(target=lambda: granted.append(time.monotonic()) if waiter.acquire(["warehouse"], timeout=10) else None)
        thread.start()
        time.sleep(1.2)  # the holder renews meanwhile: the waiter still waits
        assert not granted and waiter.read_limit("warehouse").waiting == 1
        killed = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        thread.join(5)
        assert granted and granted[0] - killed < 1.3, granted[0] - killed
        # The dead holder's lease, released late by a client that kept its id: refused, no change.
        assert waiter.release_leases([lease_id]) == [lease_id]
        info = waiter.read_limit("warehouse")
        assert info.active == 1 and info.holders[0].lease_id != lease_id


def test_a_restarted_server_keeps_held_leases_and_queued_requests(home: Path) -> None:
    server = StateServer(home, port=0, token=TOKEN, synchronous="NORMAL")
    server.start()
    port = server.port
    holder = SlotClient(server.url, token=TOKEN, lease_seconds=1.5, retry_for=10)
    waiter = SlotClient(server.url, token=TOKEN, retry_for=10)
    try:
        holder.create_limit("warehouse", 1)
        lease = holder.acquire(["warehouse"])
        got: list[Lease] = []
        waiter.request(["warehouse"], on_grant=got.append, on_error=print)
        assert holder.read_limit("warehouse").waiting == 1
        server.stop(0.5)
        server = StateServer(home, port=port, token=TOKEN, synchronous="NORMAL")
        server.start()
        info = holder.read_limit("warehouse")
        assert [h.lease_id for h in info.holders] == [lease.lease_id]
        deadline = time.monotonic() + 5
        while holder.read_limit("warehouse").waiting != 1:  # the waiter re-sent its request
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(2.0)  # past the lease time: the holder kept renewing it
        assert not lease.lost and not got
        lease.release()
        deadline = time.monotonic() + 2
        while not got:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert got[0].lease_id is not None
        got[0].release()
    finally:
        holder.close()
        waiter.close()
        server.stop(0.5)
