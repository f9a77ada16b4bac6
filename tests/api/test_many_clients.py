"""Many recording clients against one standalone server, and a recorder's cost while idle.

A real server process; real recorders, each with its own gRPC channel, in this process (as
many worker processes would hold them). The server has 128 RPC threads: a client that held
one for its whole life would leave the 129th without."""

from __future__ import annotations

import os
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


def _thread_usage(native_id: int) -> tuple[float, int]:
    """(CPU seconds, voluntary context switches) of one thread of this process: others (an
    earlier test's recorder or server still closing) must not count."""
    stat = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    switches = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("voluntary_ctxt_switches"))
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"), switches


def test_an_idle_recorder_sleeps_instead_of_polling(server_process: str) -> None:
    recorder = Recorder(_GrpcSink(Target.resolve(server_process, TOKEN, None)), window=1)
    try:
        run = flow()
        recorder.flow_run_created(run)
        recorder.flush(timeout=20)
        time.sleep(0.2)  # let it go to sleep
        thread = recorder._thread.native_id
        assert thread is not None
        cpu_before, switches_before = _thread_usage(thread)
        time.sleep(2.0)
        cpu_after, switches_after = _thread_usage(thread)
        # Polling every 5 ms costs about 400 wake-ups and tens of milliseconds of CPU in
        # 2 s; asleep, nothing (a clock tick of rounding at most).
        spent = cpu_after - cpu_before
        assert spent <= 0.011, f"the idle recorder thread used {spent:.3f} s of CPU in 2 s"
        assert switches_after - switches_before < 20, "the idle recorder thread woke up"
        # And it still wakes at once for new work.
        recorder.state_changed(state(run.id, "RUNNING"))
        started = time.monotonic()
        recorder.flush(timeout=5)
        assert time.monotonic() - started < 2.0
    finally:
        recorder.close(timeout=5)
