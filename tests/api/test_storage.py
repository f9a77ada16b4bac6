"""Storage on its own: schema versions and migrations, ordering rules, group commit."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from headwater.api import SchemaVersionError
from headwater.api.committer import GroupCommitter
from headwater.api.records import Batch, BatchResult, FlowRunRecord
from headwater.api.storage import MIGRATIONS, SCHEMA_VERSION, Storage, schema_version

from .helpers import flow, state, task


def test_an_old_database_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "headwater.db"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0])
    old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    old.execute("INSERT INTO schema_version VALUES (1)")
    old.execute("INSERT INTO flow_runs (id, name, flow_name, state_type) VALUES (?, 'old', 'f', 'RUNNING')", (str(uuid.uuid4()),))
    old.commit()
    old.close()
    storage = Storage(path)
    try:
        assert schema_version(sqlite3.connect(path)) == SCHEMA_VERSION
        [run] = storage.list_flow_runs()
        assert (run.name, run.state_type, run.last_heartbeat) == ("old", "RUNNING", None)
    finally:
        storage.close()


def test_a_newer_database_fails_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "headwater.db"
    Storage(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="version 99 is newer"):
        Storage(path)


def test_wal_mode(tmp_path: Path) -> None:
    Storage(tmp_path / "h.db").close()
    assert sqlite3.connect(tmp_path / "h.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.fixture
def committer(tmp_path: Path):  # type: ignore[no-untyped-def]
    storage = Storage(tmp_path / "h.db", synchronous="NORMAL")
    c = GroupCommitter(storage)
    yield c, storage
    c.close()
    storage.close()


def test_states_apply_in_batch_order_and_creates_come_first(committer) -> None:  # type: ignore[no-untyped-def]
    c, storage = committer
    run = flow()
    t = task(run.id)
    states = tuple(state(t.id, s, "task") for s in ("PENDING", "RUNNING", "COMPLETED"))
    result = c.apply(Batch((run,), (t,), states))
    assert (result.applied, result.rejections) == (3, ())
    [info] = storage.list_task_runs(run.id)
    assert (info.name, info.state_type) == ("t-0", "COMPLETED")


def test_a_late_state_from_another_process_is_history_only(committer) -> None:  # type: ignore[no-untyped-def]
    c, storage = committer
    t = task(None)
    before = time.time()
    c.apply(Batch(states=(state(t.id, "RUNNING", "task", timestamp=before + 1),)))
    late = c.apply(Batch(states=(state(t.id, "PENDING", "task", timestamp=before),)))
    assert (late.applied, late.rejections) == (1, ())
    assert storage.read_task_run(t.id).state_type == "RUNNING"
    assert [s.type for s in storage.read_history(t.id)] == ["PENDING", "RUNNING"]


def test_many_concurrent_submissions_share_commits(committer) -> None:  # type: ignore[no-untyped-def]
    c, storage = committer
    futures = [c.submit(Batch(flows=(flow(),))) for _ in range(500)]
    for f in futures:
        f.result(10)
    assert len(storage.list_flow_runs()) == 100  # default limit
    assert c.commits < 500  # grouped


def test_a_resent_batch_is_recorded_exactly_once(committer) -> None:  # type: ignore[no-untyped-def]
    c, storage = committer
    run = flow()
    t = task(run.id)
    batch = Batch((run,), (t,), tuple(state(t.id, s, "task") for s in ("PENDING", "RUNNING", "COMPLETED")))
    assert c.apply(batch).applied == 3
    again = c.apply(batch)  # accepted-looking repeats hit the UNIQUE index, refused ones are filtered
    assert (again.applied, again.rejections) == (0, ())
    mixed = Batch(states=(batch.states[1], state(t.id, "RUNNING", "task")))
    result = c.apply(mixed)
    assert result.applied == 0 and len(result.rejections) == 1  # only the new, illegal one
    assert len(storage.read_history(t.id)) == 3


def _v2_database(path: Path) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    """A version-2 database (text ids) with a flow run, a task run and its history."""
    old = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        old.executescript(script)
    old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    old.execute("INSERT INTO schema_version VALUES (2)")
    flow_id, task_id = uuid.uuid4(), uuid.uuid4()
    tids = [uuid.uuid4() for _ in range(2)]
    old.execute(
        "INSERT INTO flow_runs (id, name, flow_name, state_type, last_heartbeat) "
        "VALUES (?, 'old', 'f', 'RUNNING', 5.0)", (str(flow_id),),
    )
    old.execute(
        "INSERT INTO task_runs (id, flow_run_id, name, task_name, upstream, state_type) "
        "VALUES (?, ?, 't-0', 't', ?, 'RUNNING')",
        (str(task_id), str(flow_id), f'{{"x": ["{flow_id}"]}}'),
    )
    for i, (type_, tid) in enumerate(zip(("PENDING", "RUNNING"), tids)):
        old.execute(
            "INSERT INTO states (run_id, run_kind, type, name, timestamp, transition_id) "
            "VALUES (?, 'task', ?, ?, ?, ?)", (str(task_id), type_, type_.title(), 1.0 + i, str(tid)),
        )
    old.commit()
    old.close()
    return flow_id, task_id, tids


def test_a_version_2_database_moves_to_blob_ids_and_keeps_history(tmp_path: Path) -> None:
    path = tmp_path / "headwater.db"
    flow_id, task_id, tids = _v2_database(path)
    storage = Storage(path, synchronous="NORMAL")
    c = GroupCommitter(storage)
    try:
        assert schema_version(sqlite3.connect(path)) == SCHEMA_VERSION
        [run] = storage.list_flow_runs()
        assert (run.id, run.last_heartbeat, run.task_run_count) == (flow_id, 5.0, 1)
        info = storage.read_task_run(str(task_id)[:8])  # prefixes still resolve
        assert (info.flow_run_id, info.upstream) == (flow_id, {"x": (flow_id,)})
        history = storage.read_history(task_id)
        assert [(s.type, s.transition_id) for s in history] == list(zip(("PENDING", "RUNNING"), tids))
        # The migrated history still makes a re-send idempotent, and new states follow it.
        resent = state(task_id, "RUNNING", "task", transition_id=tids[1], timestamp=2.0)
        done = state(task_id, "COMPLETED", "task", timestamp=3.0)
        result = c.apply(Batch(states=(resent, done)))
        assert (result.applied, result.rejections) == (1, ())
        assert [s.type for s in storage.read_history(task_id)] == ["PENDING", "RUNNING", "COMPLETED"]
        assert storage.read_task_run(task_id).state_type == "COMPLETED"
    finally:
        c.close()
        storage.close()


def test_another_writer_on_the_same_file_is_seen(tmp_path: Path) -> None:
    """The writer caches current states; a second embedded server on the same file must not
    be overruled by that cache (it checks SQLite's data_version)."""
    first, second = Storage(tmp_path / "h.db"), Storage(tmp_path / "h.db")
    try:
        t = task(None)
        assert first.apply_batches([Batch(tasks=(t,), states=(state(t.id, "PENDING", "task"),))], 0.0)[0].applied == 1  # type: ignore[union-attr]
        assert second.apply_batches([Batch(states=(state(t.id, "RUNNING", "task"),))], 0.0)[0].applied == 1  # type: ignore[union-attr]
        # `first` cached PENDING; RUNNING -> RUNNING is illegal, PENDING -> RUNNING is not.
        [result] = first.apply_batches([Batch(states=(state(t.id, "RUNNING", "task"),))], 0.0)
        assert len(result.rejections) == 1  # type: ignore[union-attr]
        assert [s.type for s in first.read_history(t.id)] == ["PENDING", "RUNNING"]
    finally:
        first.close()
        second.close()


def test_an_ambiguous_or_malformed_prefix_is_refused(committer) -> None:  # type: ignore[no-untyped-def]
    from headwater.api import AmbiguousRunId, RunNotFound

    c, storage = committer
    a = flow()
    b = FlowRunRecord(uuid.UUID(int=a.id.int ^ 1), "b", "f")  # the same first 31 hex digits
    c.apply(Batch(flows=(a, b)))
    with pytest.raises(AmbiguousRunId):
        storage.read_flow_run(str(a.id)[:30])
    assert storage.read_flow_run(str(b.id)).name == "b"
    with pytest.raises(RunNotFound):
        storage.read_flow_run("xyz")
    with pytest.raises(RunNotFound):
        storage.read_flow_run(str(a.id).replace("-", "")[:12])  # dashes must be where ids have them


def test_a_bad_batch_in_a_group_fails_alone_and_repeats_are_no_ops(tmp_path: Path) -> None:
    """A group is first written as one; when that fails, batch by batch, as before."""
    storage = Storage(tmp_path / "h.db", synchronous="NORMAL")
    try:
        run = flow()
        t = task(run.id)
        first = Batch((run,), (t,), (state(t.id, "PENDING", "task"),))
        later = Batch(states=(state(t.id, "RUNNING", "task"), state(t.id, "COMPLETED", "task")))
        bad_run = FlowRunRecord(uuid.uuid4(), None, "f")  # type: ignore[arg-type]
        bad = Batch(flows=(bad_run,))
        results = storage.apply_batches([first, bad, later, first], time.time())
        # The batch is applied without the record it cannot store, which its result names.
        (unstored,) = results[1].unstored  # type: ignore[union-attr]
        assert unstored.run_id == bad_run.id and "name is NoneType, not text" in unstored.reason
        assert [(r.applied, r.rejections) for r in (results[0], results[2], results[3])] == [  # type: ignore[union-attr]
            (1, ()), (2, ()), (0, ())
        ]
        grouped = storage.apply_batches([later, Batch(states=(state(t.id, "RUNNING", "task"),))], 0.0)
        assert grouped[0].applied == 0 and len(grouped[1].rejections) == 1  # type: ignore[union-attr]
        assert [s.type for s in storage.read_history(t.id)] == ["PENDING", "RUNNING", "COMPLETED"]
        assert storage.read_task_run(t.id).state_type == "COMPLETED"
    finally:
        storage.close()


def test_text_sqlite_cannot_bind_fails_its_record_alone_not_the_group(tmp_path: Path) -> None:
    """Binding a lone surrogate raises UnicodeEncodeError, not sqlite3.Error: it used to roll
    back the whole group, every neighbouring batch with it."""
    storage = Storage(tmp_path / "h.db", synchronous="NORMAL")
    try:
        run = flow()
        good, bad = task(run.id, "good"), task(run.id, "bad\ud800name")
        neighbour = Batch((run,), (), (state(run.id, "RUNNING"),))
        mixed = Batch((), (good, bad), (state(good.id, "PENDING", "task"), state(bad.id, "PENDING", "task")))
        results = storage.apply_batches([neighbour, mixed], time.time())
        assert results[0] == BatchResult(1)
        (unstored,) = results[1].unstored  # type: ignore[union-attr]
        assert unstored.run_id == bad.id and f"task run {bad.id}: name is not valid Unicode" in unstored.reason
        assert storage.read_flow_run(run.id).state_type == "RUNNING"
        assert storage.read_task_run(good.id).state_type == "PENDING"
    finally:
        storage.close()


def _placement(storage: Storage, run_id: uuid.UUID) -> tuple[str | None, int | None]:
    info = storage.read_task_run(run_id)
    return info.host, info.pid


def test_a_task_run_is_placed_where_it_last_moved_whichever_announcement_comes_first(tmp_path: Path) -> None:
    """The flow's process announces a run and a worker re-announces it as moved, each over
    its own connection, so either may arrive first; a retry on another worker moves it again."""
    storage = Storage(tmp_path / "h.db", synchronous="NORMAL")
    try:
        run = flow(host="flow-host", pid=10)
        made = task(run.id, host="flow-host", pid=10)
        on_a = made._replace(host="worker-a", pid=20, moved=True)
        on_b = made._replace(host="worker-b", pid=30, moved=True)
        storage.apply_batches([Batch((run,), (made,))], 0.0)
        assert _placement(storage, made.id) == ("flow-host", 10)
        assert (storage.read_flow_run(run.id).host, storage.read_flow_run(run.id).pid) == ("flow-host", 10)
        storage.apply_batches([Batch(tasks=(on_a,))], 0.0)
        assert _placement(storage, made.id) == ("worker-a", 20)
        storage.apply_batches([Batch(tasks=(made,))], 0.0)  # the flow's copy, late or re-sent
        assert _placement(storage, made.id) == ("worker-a", 20)
        storage.apply_batches([Batch(tasks=(on_b,))], 0.0)  # the retry ran elsewhere
        assert _placement(storage, made.id) == ("worker-b", 30)

        late = task(run.id, host="flow-host", pid=10)  # the worker's copy first, in one group
        moved = late._replace(host="worker-a", pid=20, moved=True)
        storage.apply_batches([Batch(tasks=(moved,)), Batch(tasks=(late,))], 0.0)
        assert _placement(storage, late.id) == ("worker-a", 20)
        alone = task(run.id, host="worker-a", pid=20, moved=True)  # then in separate writes
        storage.apply_batches([Batch(tasks=(alone,))], 0.0)
        storage.apply_batches([Batch(tasks=(alone._replace(host="flow-host", pid=10, moved=False),))], 0.0)
        assert _placement(storage, alone.id) == ("worker-a", 20)
    finally:
        storage.close()


def test_an_earlier_attempts_move_arriving_last_does_not_move_the_run_back(tmp_path: Path) -> None:
    """Each worker records over its own connection: attempt 1's re-announcement (its worker
    failed the run) may reach the server after attempt 2's, alone or in the same group. The
    run stays where its last attempt ran; an old client's `True` is attempt 1."""
    storage = Storage(tmp_path / "h.db", synchronous="NORMAL")
    try:
        run = flow(host="flow-host", pid=10)
        made = task(run.id, host="flow-host", pid=10)
        first = made._replace(host="worker-a", pid=20, moved=1)
        second = made._replace(host="worker-b", pid=30, moved=2)
        storage.apply_batches([Batch((run,), (made,))], 0.0)
        storage.apply_batches([Batch(tasks=(second,))], 0.0)
        storage.apply_batches([Batch(tasks=(first,))], 0.0)  # late, in a write of its own
        assert _placement(storage, made.id) == ("worker-b", 30)
        storage.apply_batches([Batch(tasks=(made._replace(host="worker-a", pid=20, moved=True),))], 0.0)
        assert _placement(storage, made.id) == ("worker-b", 30)
        third = made._replace(host="worker-c", pid=40, moved=3)
        storage.apply_batches([Batch(tasks=(third,))], 0.0)
        assert _placement(storage, made.id) == ("worker-c", 40)

        grouped = task(run.id, host="flow-host", pid=10)  # both in one group, later one first
        batches = [Batch(tasks=(grouped._replace(host="worker-b", pid=30, moved=2),)),
                   Batch(tasks=(grouped._replace(host="worker-a", pid=20, moved=1),)), Batch(tasks=(grouped,))]
        storage.apply_batches(batches, 0.0)
        assert _placement(storage, grouped.id) == ("worker-b", 30)
        fresh = task(run.id, host="worker-b", pid=30, moved=2)  # a worker's copy creates it
        storage.apply_batches([Batch(tasks=(fresh,))], 0.0)
        storage.apply_batches([Batch(tasks=(fresh._replace(host="worker-a", pid=20, moved=1),))], 0.0)
        assert _placement(storage, fresh.id) == ("worker-b", 30)
    finally:
        storage.close()


def test_a_version_3_database_gains_placement_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "headwater.db"
    flow_id, task_id, _ = _v2_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.create_function("uuid_blob", 1, lambda t: None if t is None else uuid.UUID(t).bytes)
    for statement in MIGRATIONS[2].split(";"):  # to version 3, as a headwater of then did
        if statement.strip():
            conn.execute(statement)
    conn.execute("UPDATE schema_version SET version = 3")
    conn.close()
    storage = Storage(path, synchronous="NORMAL")
    try:
        assert schema_version(sqlite3.connect(path)) == SCHEMA_VERSION
        [run] = storage.list_flow_runs()
        assert (run.id, run.name, run.host, run.pid) == (flow_id, "old", None, None)
        old = storage.read_task_run(task_id)
        assert (old.state_type, old.host, old.pid) == ("RUNNING", None, None)
        # A stored run without a placement gets the first one announced.
        rec = task(flow_id, host="h", pid=7)._replace(id=task_id)
        storage.apply_batches([Batch(tasks=(rec,))], 0.0)
        assert _placement(storage, task_id) == ("h", 7)
    finally:
        storage.close()
