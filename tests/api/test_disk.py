"""Disk trouble under the database, met by real flow processes and the real CLI: a full disk,
a read-only home, a damaged file. Each is named (the file, the cause, the remedy), none with a
raw sqlite traceback, and a damaged database is moved aside only by `headwater db reset`.

The small and read-only filesystems are tmpfs mounts (the tests run as root).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.test_recording import PYTHON, cli_json, run_script

FLOW = """
import pathlib
from headwater import flow, task

@task
def noop(i: int) -> int:
    return i

@flow
def disk_bound(n: int) -> int:
    pathlib.Path({marker!r}).write_text("the body ran")
    return sum(noop.map(range(n)).result())

print(disk_bound({n}))
"""


def _flow(home: Path, tmp_path: Path, n: int = 1) -> tuple[subprocess.CompletedProcess[str], Path]:
    marker = tmp_path / "marker"
    marker.unlink(missing_ok=True)
    return run_script(home, FLOW.format(marker=str(marker), n=n)), marker


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEADWATER_HOME": str(home)}
    env.pop("HEADWATER_API_URL", None)
    return subprocess.run(
        [PYTHON, "-m", "headwater.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A fresh 1 MB tmpfs; remount it read-only with `_read_only`."""
    where = tmp_path / "mnt"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def _assert_named(stderr: str, path: Path, *words: str) -> None:
    assert str(path) in stderr, stderr
    for word in words:
        assert word in stderr, stderr
    assert "cannot rollback" not in stderr and "sqlite3." not in stderr, stderr


# -- a full disk -----------------------------------------------------------------------------


def test_a_disk_that_fills_mid_flow_is_named_not_hidden_behind_a_rollback(mount: Path, tmp_path: Path) -> None:
    result, marker = _flow(mount / "home", tmp_path, n=3000)  # ~2 MB of records on a 1 MB disk
    assert result.returncode != 0 and marker.exists()
    _assert_named(result.stderr, mount / "home" / "headwater.db", "RecordingError", "the disk is full")


def test_a_full_disk_at_start_fails_before_the_body_runs(mount: Path, tmp_path: Path) -> None:
    with open(mount / "filler", "wb") as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    result, marker = _flow(mount / "home", tmp_path)
    assert result.returncode != 0 and not marker.exists()
    _assert_named(result.stderr, mount / "home" / "headwater.db", "StorageError", "the disk is full", "HEADWATER_HOME")


# -- a read-only home ------------------------------------------------------------------------


def test_a_read_only_home_fails_before_the_body_runs_and_can_still_be_read(mount: Path, tmp_path: Path) -> None:
    home = mount / "home"
    result, marker = _flow(home, tmp_path)
    assert result.returncode == 0, result.stderr
    _read_only(mount)

    result, marker = _flow(home, tmp_path)
    assert result.returncode != 0 and not marker.exists()
    _assert_named(result.stderr, home / "headwater.db", "StorageError", f"make {home} writable")

    result, marker = _flow(mount / "missing", tmp_path)
    assert result.returncode != 0 and not marker.exists()
    _assert_named(result.stderr, mount / "missing", "cannot create the headwater directory")

    (run,) = cli_json(home, "ls")  # reading needs no write: `runs` works on read-only media
    assert run["state_type"] == "COMPLETED"


# -- a damaged database ----------------------------------------------------------------------


def _damage_by_garbage(db: Path) -> None:
    db.write_bytes(b"this is not a database, but it is someone's file\n" * 100)


def _damage_by_truncation(db: Path) -> None:
    with sqlite3.connect(db) as conn:  # fold the WAL in, so the file alone holds the runs
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.truncate(db, db.stat().st_size // 2)


@pytest.mark.parametrize("damage", [_damage_by_garbage, _damage_by_truncation])
def test_a_damaged_database_is_named_and_moved_aside_only_on_request(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    db = home / "headwater.db"
    result, _ = _flow(home, tmp_path, n=500)
    assert result.returncode == 0, result.stderr
    damage(db)
    damaged = db.read_bytes()

    result, marker = _flow(home, tmp_path)
    assert result.returncode != 0 and not marker.exists()
    _assert_named(result.stderr, db, "DamagedDatabase", f"headwater db reset --home {home}")
    listed = _cli(home, "runs", "ls")
    assert listed.returncode == 1
    _assert_named(listed.stderr, db, "is damaged", "headwater db reset")
    assert db.read_bytes() == damaged  # nothing replaced it on its own

    reset = _cli(home, "db", "reset")
    assert reset.returncode == 0, reset.stderr
    (aside,) = home.glob("headwater.db.damaged-*[0-9]")
    assert aside.read_bytes() == damaged and str(aside) in reset.stdout
    result, marker = _flow(home, tmp_path)
    assert result.returncode == 0 and marker.exists(), result.stderr
    assert [r["flow_name"] for r in cli_json(home, "ls")] == ["disk_bound"]


def test_db_reset_leaves_a_whole_database_alone(tmp_path: Path) -> None:
    result, _ = _flow(tmp_path / "home", tmp_path)
    assert result.returncode == 0, result.stderr
    reset = _cli(tmp_path / "home", "db", "reset")
    assert reset.returncode == 1 and "not damaged" in reset.stderr
    assert sorted(p.name for p in (tmp_path / "home").iterdir() if "damaged" in p.name) == []
    assert len(cli_json(tmp_path / "home", "ls")) == 1


def test_runs_ls_on_a_newer_schema_says_to_upgrade_headwater(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result, _ = _flow(home, tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(home / "headwater.db") as conn:
        conn.execute("UPDATE schema_version SET version = version + 1")
    listed = _cli(home, "runs", "ls")
    assert listed.returncode == 1
    assert "newer headwater" in listed.stderr and "upgrade headwater" in listed.stderr
    assert "server start" not in listed.stderr


# -- file modes ------------------------------------------------------------------------------


def test_a_new_home_is_private_and_so_are_the_database_files(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "home"
    code = FLOW.format(marker=str(tmp_path / "marker"), n=3) + "\nimport os\nos._exit(0)\n"
    result = run_script(home, code)  # _exit: the -wal and -shm stay, as in a running flow
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.iterdir()}
    assert files == {"headwater.db": 0o600, "headwater.db-wal": 0o600, "headwater.db-shm": 0o600}


def test_an_existing_home_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    result, _ = _flow(home, tmp_path)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o755
    assert stat.S_IMODE((home / "headwater.db").stat().st_mode) == 0o600
