"""Run logs in the state service: recorded through the embedded path (the recorder hands
batches to the committer) and through a server (`RecordBatch`), read back with `ReadLogs`,
followed with `FollowLogs`. Real servers on 127.0.0.1, real SQLite, no mocks."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.api import LogRecord, Recorder, StateClient, StateServer
from headwater.api.log_buffer import LogBuffer
from headwater.api.log_records import MAX_LOG_BYTES
from headwater.api.recorder import _GrpcSink, _LocalSink
from headwater.api.client import Target

from .conftest import TOKEN
from .helpers import flow, state, task


def line(flow_run_id: uuid.UUID, message: str, task_run_id: uuid.UUID | None = None,
         level: int = logging.INFO, exception: str | None = None) -> LogRecord:
    return LogRecord(flow_run_id, task_run_id, level, time.time(), "headwater.test", message, exception)


@pytest.fixture
def local(server: StateServer) -> Iterator[Recorder]:
    assert server.committer is not None
    rec = Recorder(_LocalSink(server.committer))
    yield rec
    rec.close(5)


@pytest.fixture
def remote(server: StateServer) -> Iterator[Recorder]:
    rec = Recorder(_GrpcSink(Target.resolve(server.url, TOKEN, None)))
    yield rec
    rec.close(5)


@pytest.mark.parametrize("path", ["local", "remote"])
def test_lines_land_with_their_run_ids(path: str, request: pytest.FixtureRequest, client: StateClient) -> None:
    rec: Recorder = request.getfixturevalue(path)
    f = flow()
    t = task(f.id, "extract")
    rec.flow_run_created(f)
    rec.task_run_created(t)
    rec.log(line(f.id, "flow starts"))
    rec.log(line(f.id, "task says hi", t.id, logging.WARNING))
    rec.log(line(f.id, "task fails", t.id, logging.ERROR, exception="Traceback...\nValueError: x"))
    rec.flush(5)
    page = client.read_logs(f.id)
    assert [(ln.message, ln.task_run_id, ln.label) for ln in page.lines] == [
        ("flow starts", None, None), ("task says hi", t.id, t.name), ("task fails", t.id, t.name),
    ]
    assert page.lines[2].exception == "Traceback...\nValueError: x"
    assert page.next_seq == page.lines[-1].seq
    assert [ln.message for ln in client.read_logs(t.id).lines] == ["task says hi", "task fails"]
    assert [ln.message for ln in client.read_logs(f.id, level="warning").lines] == ["task says hi", "task fails"]
    assert [ln.message for ln in client.read_logs(f.id, task="extract").lines] == ["task says hi", "task fails"]
    assert client.read_logs(str(f.id)[:8], level=logging.ERROR).lines[0].level_name == "ERROR"


def test_paging_and_tail(local: Recorder, client: StateClient) -> None:
    f = flow()
    local.flow_run_created(f)
    for i in range(25):
        local.log(line(f.id, f"line {i}"))
    local.flush(5)
    seen, after = [], None
    while True:
        page = client.read_logs(f.id, after_seq=after, limit=10)
        if not page.lines:
            break
        seen += [ln.message for ln in page.lines]
        after = page.next_seq
    assert seen == [f"line {i}" for i in range(25)]
    assert [ln.message for ln in client.read_logs(f.id, limit=3, tail=True).lines] == ["line 22", "line 23", "line 24"]


def test_a_flow_runs_logs_include_its_subflows(local: Recorder, client: StateClient) -> None:
    parent = flow("parent")
    child = flow("child", parent_flow_run_id=parent.id)
    local.flow_run_created(parent)
    local.flow_run_created(child)
    local.log(line(parent.id, "in parent"))
    local.log(line(child.id, "in child"))
    local.flush(5)
    lines = client.read_logs(parent.id).lines
    assert [(ln.message, ln.label) for ln in lines] == [("in parent", None), ("in child", child.name)]
    assert [ln.message for ln in client.read_logs(child.id).lines] == ["in child"]


def test_an_oversized_message_is_truncated_with_a_marker(remote: Recorder, client: StateClient) -> None:
    f = flow()
    remote.flow_run_created(f)
    remote.log(line(f.id, "é" * MAX_LOG_BYTES, exception="x" * (MAX_LOG_BYTES + 10)))
    remote.flush(5)
    [stored] = client.read_logs(f.id).lines
    assert stored.message.endswith(f"... [truncated {MAX_LOG_BYTES} bytes]")
    assert len(stored.message.split("...")[0].encode()) == MAX_LOG_BYTES
    assert stored.exception is not None and stored.exception.endswith("... [truncated 10 bytes]")


def test_a_log_storm_is_bounded_counted_and_told(server: StateServer, client: StateClient) -> None:
    assert server.committer is not None
    rec = Recorder(_LocalSink(server.committer), max_logs_buffered=1000)
    try:
        f = flow()
        rec.flow_run_created(f)
        most = 0
        for i in range(200_000):
            rec.log(line(f.id, f"storm {i}"))
            if i % 1000 == 0:
                most = max(most, len(rec._logs._queue) + rec._logs.held)
        rec.flush(10)
        dropped = rec.statistics().dropped_logs
    finally:
        rec.close(5)
    assert most <= 1000 + 1  # one producer: at most one past the bound
    assert dropped > 0
    stored, after = [], None
    while page := client.read_logs(f.id, after_seq=after, limit=10_000).lines:
        stored += page
        after = page[-1].seq
    notices = [ln for ln in stored if ln.logger == "headwater.logs"]
    assert notices and all(n.level == logging.WARNING for n in notices)
    told = sum(int(n.message.split()[0]) for n in notices)
    assert told == dropped
    assert len(stored) - len(notices) + dropped == 200_000


def test_lines_kept_through_a_storm_use_a_reserve_beyond_the_bound() -> None:
    buffer = LogBuffer(max_buffered=100)
    f = uuid.uuid4()
    for i in range(150):
        buffer.append(line(f, f"storm {i}"))
    buffer.append(line(f, "an error", level=logging.ERROR), keep=True)
    buffer.append(line(f, "Finished in state Failed"), keep=True)
    for i in range(20):  # the reserve is a tenth of the bound: 10 records
        buffer.append(line(f, f"kept {i}"), keep=True)
    buffer.tell_at_next_take()
    messages = [r.message for batch in buffer.take(time.time(), 10_000) for r in batch]
    assert messages[100:102] == ["an error", "Finished in state Failed"]
    assert messages[102:110] == [f"kept {i}" for i in range(8)]
    assert buffer.dropped == 50 + 12
    assert messages[-1].startswith("62 log records") and len(messages) == 111  # the notice, last


def test_a_refused_log_batch_is_dropped_not_a_recording_error(remote: Recorder, client: StateClient) -> None:
    f = flow()
    remote.flow_run_created(f)
    remote.state_changed(state(f.id, "RUNNING"))
    # A level the wire refuses: the server says INVALID_ARGUMENT for the whole log batch.
    remote.log(line(f.id, "refused", level=-1))
    remote.flush(5)  # no RecordingError
    remote.log(line(f.id, "kept"))
    remote.state_changed(state(f.id, "COMPLETED"))
    remote.flush(5)
    assert remote.statistics().dropped_logs == 1
    messages = [ln.message for ln in client.read_logs(f.id).lines]
    assert "kept" in messages and "refused" not in messages
    assert client.read_flow_run(f.id).state_type == "COMPLETED"


def test_follow_pushes_new_lines_and_ends_with_the_run(local: Recorder, server: StateServer) -> None:
    f = flow()
    local.flow_run_created(f)
    local.state_changed(state(f.id, "RUNNING"))
    local.log(line(f.id, "before"))
    local.flush(5)
    got: list[tuple[str, float]] = []
    ended = threading.Event()

    def follow() -> None:
        with StateClient(server.url, token=TOKEN) as c:
            for ln in c.follow_logs(f.id):
                got.append((ln.message, time.monotonic()))
        ended.set()

    threading.Thread(target=follow, daemon=True).start()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [m for m, _ in got] == ["before"]
    written = time.monotonic()
    local.log(line(f.id, "after"))
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert got[1][0] == "after" and got[1][1] - written < 0.1
    assert not ended.is_set()
    local.log(line(f.id, "last words"))
    local.state_changed(state(f.id, "COMPLETED"))
    assert ended.wait(5)
    assert [m for m, _ in got] == ["before", "after", "last words"]


def test_follow_lingers_for_a_workers_lines_after_the_final_state(
    local: Recorder, remote: Recorder, server: StateServer
) -> None:
    f = flow()
    local.flow_run_created(f)
    local.state_changed(state(f.id, "RUNNING"))
    local.log(line(f.id, "flow line"))
    local.state_changed(state(f.id, "COMPLETED"))
    local.flush(5)
    got: list[str] = []
    ended = threading.Event()

    def follow() -> None:
        with StateClient(server.url, token=TOKEN) as c:
            got.extend(ln.message for ln in c.follow_logs(f.id))
        ended.set()

    started = time.monotonic()
    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.3)  # the follower has seen the final state by now
    remote.log(line(f.id, "a worker's late line"))  # through a connection of its own
    remote.flush(5)
    assert ended.wait(5)
    assert got == ["flow line", "a worker's late line"]
    assert time.monotonic() - started < 2  # and it ends once the linger is over
    with StateClient(server.url, token=TOKEN) as c:  # a run that ended a while ago: at once
        time.sleep(1.0)
        started = time.monotonic()
        assert len(list(c.follow_logs(f.id))) == 2
        assert time.monotonic() - started < 0.5


def test_the_database_migrates_to_a_logs_table(home: Path, server: StateServer) -> None:
    import sqlite3

    conn = sqlite3.connect(home / "headwater.db")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(logs)")]
    assert columns == ["seq", "flow_run_id", "task_run_id", "level", "timestamp", "logger", "message", "exception"]
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'logs_by_flow_run'").fetchone()
