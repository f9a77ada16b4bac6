"""The process-wide recorder against the embedded server, used from many threads."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from headwater.api import StateClient, embedded_server, get_recorder, reset_recorder, worker_environment

from .helpers import flow, state, task


@pytest.fixture
def recorder_env() -> Iterator[None]:
    reset_recorder()  # counts below start from a fresh recorder, whatever ran before
    yield
    reset_recorder()


def test_embedded_server_records_from_many_threads(recorder_env: None) -> None:
    recorder = get_recorder()
    assert get_recorder() is recorder
    server = embedded_server()
    assert server is not None and server.url.startswith("grpc://127.0.0.1:")
    env = worker_environment()
    assert env["HEADWATER_API_URL"] == server.url and env["HEADWATER_API_TOKEN"]
    # The target travels with each task call; the process's environment is left alone.
    assert "HEADWATER_API_URL" not in os.environ
    run = flow()
    recorder.flow_run_created(run)
    recorder.state_changed(state(run.id, "RUNNING"))

    def work() -> None:
        for _ in range(200):
            t = task(run.id)
            recorder.task_run_created(t)
            for type_ in ("PENDING", "RUNNING", "COMPLETED"):
                recorder.state_changed(state(t.id, type_, "task"))
        recorder.heartbeat(run.id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    recorder.flush(timeout=30)
    with StateClient(env["HEADWATER_API_URL"], token=env["HEADWATER_API_TOKEN"]) as c:
        info = c.read_flow_run(run.id)
        assert info.task_run_count == 1600 and info.last_heartbeat is not None
        tasks = c.list_task_runs(run.id)
        assert {t.state_type for t in tasks} == {"COMPLETED"}
    stats = recorder.statistics()
    assert stats.applied_states == 1 + 1600 * 3 and stats.rejected_states == 0


def test_illegal_transitions_are_reported_not_raised(recorder_env: None) -> None:
    recorder = get_recorder()
    run = flow()
    recorder.flow_run_created(run)
    recorder.state_changed(state(run.id, "RUNNING"))
    recorder.state_changed(state(run.id, "COMPLETED"))
    recorder.state_changed(state(run.id, "RUNNING", timestamp=time.time() + 1))
    recorder.flush(timeout=10)
    [rejected] = recorder.rejections()
    assert rejected.run_id == run.id and "COMPLETED -> RUNNING" in rejected.reason


def test_enqueue_is_cheap(recorder_env: None) -> None:
    recorder = get_recorder()
    run = flow()
    records = [state(run.id, "PENDING") for _ in range(20_000)]
    start = time.perf_counter()
    for r in records:
        recorder.state_changed(r)
    per_call = (time.perf_counter() - start) / len(records)
    assert per_call < 5e-6, f"{per_call * 1e6:.2f} µs per enqueue"
    recorder.flush(timeout=30)


def test_odd_records_do_not_poison_a_batch_sent_over_grpc(client) -> None:  # type: ignore[no-untyped-def]
    from headwater.api.client import Target
    from headwater.api.recorder import Recorder, _GrpcSink

    from .conftest import TOKEN

    nested: object = 1
    for _ in range(50):
        nested = [nested]
    recorder = Recorder(_GrpcSink(Target.resolve(client.target.address, TOKEN, None)))
    try:
        odd = flow(parameters={"deep": nested})
        odd = type(odd)(odd.id, "n" * 5000, "f", odd.parameters)
        normal = flow()
        for run in (odd, normal):
            recorder.flow_run_created(run)
            recorder.state_changed(state(run.id, "RUNNING", message="m" * 100_000))
        recorder.flush(timeout=10)
        info = client.read_flow_run(odd.id)
        assert len(info.name) == 1000 and "__headwater__" in info.parameters
        assert client.read_flow_run(normal.id).state_type == "RUNNING"
    finally:
        recorder.close(timeout=5)


@pytest.mark.parametrize("sink", ["local", "grpc"])
def test_a_record_the_server_cannot_store_fails_alone(server, client, sink: str) -> None:  # type: ignore[no-untyped-def]
    from headwater.api import RecordingError
    from headwater.api.client import Target
    from headwater.api.recorder import Recorder, _GrpcSink, _LocalSink

    from .conftest import TOKEN

    # A long interval: the records below form their batches the same way every run (the
    # first wakes the thread, the flush sends the rest), whatever the machine's load.
    if sink == "local":  # the embedded path: batches straight to the group committer
        recorder = Recorder(_LocalSink(server.committer), interval=30)
    else:
        recorder = Recorder(_GrpcSink(Target.resolve(server.url, TOKEN, None)), interval=30, window=1)
    try:
        run = flow()
        good, bad_name, bad_message = task(run.id, "good"), task(run.id, "bad\ud800"), task(run.id, "ok")
        recorder.flow_run_created(run)
        recorder.state_changed(state(run.id, "RUNNING"))
        for t in (good, bad_name, bad_message):
            recorder.task_run_created(t)
            recorder.state_changed(state(t.id, "RUNNING", "task"))
        recorder.state_changed(state(bad_message.id, "FAILED", "task", message="no\udcff"))
        recorder.state_changed(state(good.id, "COMPLETED", "task"))
        with pytest.raises(RecordingError) as err:
            recorder.flush(timeout=10)
        assert err.value.run_ids == {bad_name.id, bad_message.id}
        assert f"task run {bad_name.id}: name is not valid Unicode text" in str(err.value)
        info = client.read_flow_run(run.id)
        assert (info.name, info.parameters, info.state_type) == (run.name, run.parameters, "RUNNING")
        assert client.read_task_run(good.id).state_type == "COMPLETED"
        assert [s.type for s in client.read_history(bad_message.id)] == ["RUNNING"]
        recorder.flush(timeout=10)  # reported once
    finally:
        recorder.close(timeout=5)


def test_producers_are_told_to_wait_while_the_server_lags_never_while_it_is_away(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`behind()` (a flow's threads pause on it, so its final flush stays short) is true while
    records pile up behind a server that takes them slowly, here one stopped with SIGSTOP,
    and false once the server is away: then buffering is the point."""
    import contextlib
    import signal

    from headwater.api.client import Target
    from headwater.errors import FlushTimeout
    from headwater.api.recorder import BEHIND_RECORDS, Recorder, _GrpcSink

    from .conftest import TOKEN
    from .helpers import start_server_process, stop_process

    proc, url = start_server_process(tmp_path / "home", "--token", TOKEN)
    recorder = Recorder(_GrpcSink(Target.resolve(url, TOKEN, None)), window=1, grace=60)
    try:
        run = flow()
        recorder.flow_run_created(run)
        recorder.flush(timeout=20)
        assert not recorder.behind()
        os.kill(proc.pid, signal.SIGSTOP)  # up, as far as the recorder can tell, but not taking anything
        for i in range(BEHIND_RECORDS + 2_000):
            recorder.state_changed(state(run.id, "RUNNING", timestamp=float(i)))
        deadline = time.monotonic() + 10
        while not recorder.behind() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recorder.behind()
        proc.kill()  # now away: its connection breaks
        os.kill(proc.pid, signal.SIGCONT)
        proc.wait(10)
        deadline = time.monotonic() + 20
        while recorder.statistics().connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not recorder.statistics().connected and not recorder.behind()
    finally:
        with contextlib.suppress(FlushTimeout):  # its server is gone: those records cannot be
            recorder.close(timeout=1)
        stop_process(proc)
