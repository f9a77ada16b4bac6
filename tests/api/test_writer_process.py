"""The database writer in a process of its own (`writer_process.py`): real child interpreters
on the test's database, real SQLite, a real SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.api import Recorder, StateClient, StateServer, codec
from headwater.api.errors import ServerConfigError
from headwater.api.records import Batch
from headwater.api.recorder import _LocalSink
from headwater.api.settings import DB_FILENAME
from headwater.api.writer_process import SPAWN_AFTER_RECORDS, OffloadingWriter, WriterProcess

from .conftest import TOKEN
from .helpers import flow, state, task


def _server(home: Path, mode: str) -> StateServer:
    srv = StateServer(home, port=0, token=TOKEN, synchronous="NORMAL", writer_process=mode)
    srv.start()
    return srv


@pytest.fixture
def offloading(home: Path) -> Iterator[StateServer]:
    srv = _server(home, "always")
    yield srv
    srv.stop(0.5)


def _record_flow(rec: Recorder, tasks: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    f = flow()
    rec.flow_run_created(f)
    rec.state_changed(state(f.id, "RUNNING"))
    ids = []
    for _ in range(tasks):
        t = task(f.id)
        ids.append(t.id)
        rec.task_run_created(t)
        for kind in ("PENDING", "RUNNING", "COMPLETED"):
            rec.state_changed(state(t.id, kind, "task"))
    rec.state_changed(state(f.id, "COMPLETED"))
    return f.id, ids


def _writer(srv: StateServer) -> OffloadingWriter:
    assert srv.committer is not None
    return srv.committer.writer


def _wait_ready(writer: OffloadingWriter) -> WriterProcess:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        child = writer.child
        if child is not None and child.poll_ready():
            return child
        time.sleep(0.01)
    raise AssertionError("the writer process never became ready")


def _history_counts(home: Path, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    conn = sqlite3.connect(home / DB_FILENAME)
    try:
        rows = conn.execute(
            "SELECT run_id, count(*) FROM states WHERE run_kind = 'task' GROUP BY run_id"
        ).fetchall()
    finally:
        conn.close()
    counts = {uuid.UUID(bytes=bytes(r)): n for r, n in rows}
    return {run_id: counts.get(run_id, 0) for run_id in run_ids}


def test_a_busy_server_commits_through_its_writer_process(offloading: StateServer, home: Path) -> None:
    rec = Recorder(_LocalSink(offloading.committer))  # type: ignore[arg-type]
    try:
        writer = _writer(offloading)
        child = _wait_ready(writer)
        assert child.pid != os.getpid() and os.path.exists(f"/proc/{child.pid}")
        flow_id, task_ids = _record_flow(rec, 2000)
        rec.flush(30)
    finally:
        rec.close(5)
    assert writer.groups_offloaded > 0
    with StateClient(offloading.url, token=TOKEN) as client:
        assert client.read_flow_run(flow_id).state_type == "COMPLETED"
        runs = client.list_task_runs(flow_id)
    assert len(runs) == 2000 and {r.state_type for r in runs} == {"COMPLETED"}
    assert set(_history_counts(home, task_ids).values()) == {3}


def test_a_killed_writer_process_loses_and_repeats_nothing(offloading: StateServer, home: Path) -> None:
    rec = Recorder(_LocalSink(offloading.committer))  # type: ignore[arg-type]
    try:
        writer = _writer(offloading)
        child = _wait_ready(writer)
        first_flow, first_tasks = _record_flow(rec, 500)
        rec.flush(30)
        assert writer.groups_offloaded > 0
        os.kill(child.pid, signal.SIGKILL)
        second_flow, second_tasks = _record_flow(rec, 500)  # the group in hand goes here
        rec.flush(30)
    finally:
        rec.close(5)
    assert writer.child is None  # written in this process from then on
    with StateClient(offloading.url, token=TOKEN) as client:
        for flow_id in (first_flow, second_flow):
            assert client.read_flow_run(flow_id).state_type == "COMPLETED"
            assert {r.state_type for r in client.list_task_runs(flow_id)} == {"COMPLETED"}
    assert set(_history_counts(home, first_tasks + second_tasks).values()) == {3}


def test_a_group_the_child_committed_before_dying_is_not_stored_twice(offloading: StateServer, home: Path) -> None:
    writer = _writer(offloading)
    child = _wait_ready(writer)
    f = flow()
    t = task(f.id)
    batch = Batch(flows=(f,), tasks=(t,), states=(state(f.id, "RUNNING"), state(t.id, "PENDING", "task")))
    [first] = child.receive(child.send([codec.batch_body(0, batch)], time.time()))
    assert not isinstance(first, Exception) and first.applied == 2
    writer._give_up("killed for the test")  # as after a death: the same group is redone here
    [again] = writer.apply_batches([batch], time.time())
    assert not isinstance(again, Exception) and not again.rejections
    assert _history_counts(home, [t.id]) == {t.id: 1}


def test_auto_starts_the_child_only_once_the_server_is_busy(home: Path) -> None:
    srv = _server(home, "auto")
    try:
        rec = Recorder(_LocalSink(srv.committer))  # type: ignore[arg-type]
        writer = _writer(srv)
        _record_flow(rec, 10)  # a small flow: written here, no child
        rec.flush(10)
        assert writer.child is None
        _record_flow(rec, SPAWN_AFTER_RECORDS // 4 + 10)  # 4 records a task: past the threshold
        rec.flush(30)
        assert writer.child is not None
        child = writer.child
        rec.close(5)
    finally:
        srv.stop(0.5)
    assert child._proc.poll() is not None  # stopping the server ends and reaps the child


def test_an_unknown_mode_is_refused_with_the_choices(home: Path) -> None:
    with pytest.raises(ServerConfigError, match="HEADWATER_WRITER_PROCESS='sometimes' is not one of auto, always, never"):
        StateServer(home, port=0, token=TOKEN, writer_process="sometimes")


def test_a_refused_state_comes_back_from_the_child_naming_its_run(offloading: StateServer) -> None:
    writer = _writer(offloading)
    _wait_ready(writer)
    f = flow()
    t = task(f.id)
    now = time.time()
    states = [state(t.id, kind, "task", timestamp=now + i)
              for i, kind in enumerate(("PENDING", "RUNNING", "COMPLETED", "RUNNING"))]
    back = states[-1]  # a finished run does not start again
    [result] = writer.apply_batches([Batch(flows=(f,), tasks=(t,), states=tuple(states))], now)
    assert writer.groups_offloaded > 0 and writer.child is not None
    assert not isinstance(result, Exception) and result.applied == 3
    [refused] = result.rejections
    assert (refused.run_id, refused.transition_id) == (t.id, back.transition_id)
    assert "not allowed" in refused.reason


def test_the_child_decodes_what_batch_body_encodes_field_for_field() -> None:
    from headwater.api.writer_main import decode_trusted

    f = flow()
    up = task(f.id)
    t = task(f.id, "load", tags=("etl", "nightly"), upstream={"x": (up.id,)}, host="h", pid=7)
    s = state(t.id, "COMPLETED", "task", message="done", retry=True)
    batch = Batch((f,), (up, t), (state(f.id, "RUNNING"), s), (f.id,))
    decoded = decode_trusted(codec.batch_body(3, batch))
    assert decoded.flows == batch.flows and decoded.heartbeats == (f.id,)
    # A task run's ids stay raw bytes in the child; an upstream id is a UUID (storage's text).
    assert [(bytes(r.id), bytes(r.flow_run_id)) for r in decoded.tasks] == [(r.id.bytes, f.id.bytes) for r in (up, t)]
    assert decoded.tasks[1][2:] == (t.name, t.task_name, ("etl", "nightly"), {"x": (up.id,)}, t.created, "h", 7, False)
    assert decoded.tasks[0].upstream == {} and decoded.tasks[0].tags == ()
    flow_state, task_state = decoded.states
    assert (flow_state.run_kind, task_state.run_kind) == ("flow", "task")
    assert bytes(task_state.run_id) == t.id.bytes and bytes(task_state.transition_id) == s.transition_id.bytes
    assert task_state[2:6] == ("COMPLETED", "Completed", "done", s.timestamp) and task_state.retry is True
