"""Storage on its own: schema versions and migrations, ordering rules, group commit."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from headwater.api import SchemaVersionError
from headwater.api.committer import GroupCommitter
from headwater.api.records import Batch
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
