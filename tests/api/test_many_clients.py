"""Many recording clients against one standalone server, and a recorder's cost while idle.

A real server process; real recorders, each with its own gRPC channel, in this process (as
many worker processes would hold them). The server has 128 RPC threads: a client that held
one for its whole life would leave the 129th without."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path


from headwater.api import RunFilter, StateClient
from headwater.api.client import Target
from headwater.api.recorder import Recorder, _GrpcSink
from headwater.api.server import MAX_WORKERS

from .conftest import TOKEN
from .helpers import flow, state



def test_more_recording_clients_than_server_threads_all_flush_and_reads_stay_fast(server_process: str) -> None:
    target = Target.resolve(server_process, TOKEN, None)
    clients = MAX_WORKERS + 22
    recorders = [Recorder(_GrpcSink(target), window=1) for _ in range(clients)]
    try:
        runs = []
        for recorder in recorders:
            run = flow()
            recorder.flow_run_created(run)
            recorder.state_changed(state(run.id, "RUNNING"))
            runs.append(run)
        started = time.monotonic()
        for recorder in recorders:  # every one, the 129th included, gets its batch committed
            recorder.flush(timeout=20)
        assert time.monotonic() - started < 20
        # All of them are alive and idle now: a read must not wait behind them.
        with StateClient(server_process, token=TOKEN) as client:
            started = time.perf_counter()
            client.list_flow_runs()  # what `headwater runs ls` asks: the newest 100
            elapsed = time.perf_counter() - started
            listed = client.list_flow_runs(RunFilter(limit=clients))
        assert elapsed < 1.0, f"runs ls took {elapsed:.3f} s with {clients} idle clients"
        assert {r.id for r in runs} == {r.id for r in listed}
    finally:
        for recorder in recorders:
            recorder.close(timeout=5)


def _cpu_seconds(thread_name: str) -> float:
    """CPU time of this process's threads named `thread_name` (Linux: /proc task stats)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        if comm.startswith(thread_name[:15]):  # the kernel keeps 15 characters of a name
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def test_an_idle_recorder_sleeps_instead_of_polling(server_process: str) -> None:
    recorder = Recorder(_GrpcSink(Target.resolve(server_process, TOKEN, None)), window=1)
    try:
        run = flow()
        recorder.flow_run_created(run)
        recorder.flush(timeout=20)
        time.sleep(0.2)  # let it go to sleep
        before = _cpu_seconds("headwater-recorder")
        wakeups_before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
        time.sleep(2.0)
        spent = _cpu_seconds("headwater-recorder") - before
        # Polling every 5 ms costs about 400 wake-ups and tens of milliseconds of CPU in
        # 2 s; asleep, nothing (a clock tick of rounding at most).
        assert spent <= 0.011, f"the idle recorder thread used {spent:.3f} s of CPU in 2 s"
        switches = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - wakeups_before
        assert switches < 200
        # And it still wakes at once for new work.
        recorder.state_changed(state(run.id, "RUNNING"))
        started = time.monotonic()
        recorder.flush(timeout=5)
        assert time.monotonic() - started < 2.0
    finally:
        recorder.close(timeout=5)
