"""`LocalStore`: signed entries in a real diskcache directory; tampering, truncation, a lost
file and an unreadable payload are misses that delete the entry, never an unpickled forgery."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from headwater.cache.store import LocalStore
from headwater.errors import CacheStoreError

BIG = b"x" * 100_000  # diskcache keeps values this size in files of their own


def _store(tmp_path: Path, **kwargs: int) -> LocalStore:
    return LocalStore(tmp_path / "cache", tmp_path / "cache.key", **kwargs)


def test_a_value_comes_back_with_what_it_is(tmp_path: Path) -> None:
    store = _store(tmp_path)
    size = store.put("k1", {"rows": [1, 2, 3]}, task="load")
    hit = store.get("k1")
    assert hit is not None and hit.value == {"rows": [1, 2, 3]}
    assert (hit.entry.key, hit.entry.task, hit.entry.expires) == ("k1", "load", None)
    assert 0 < hit.entry.size < size
    assert store.get("never-stored") is None
    assert store.stats()[2:] == (1, 1)  # hits, misses


def test_the_directory_and_the_key_are_the_owners_alone(tmp_path: Path) -> None:
    _store(tmp_path)
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cache.key").stat().st_mode) == 0o600


def test_another_process_shares_the_entries_and_the_counts(tmp_path: Path) -> None:
    _store(tmp_path).put("shared", [1, 2], task="t")
    code = (
        "import sys; from pathlib import Path; from headwater.cache.store import LocalStore\n"
        "s = LocalStore(Path(sys.argv[1]) / 'cache', Path(sys.argv[1]) / 'cache.key')\n"
        "print(s.get('shared').value)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[1, 2]"
    assert _store(tmp_path).stats().hits == 1


def test_an_expired_entry_is_a_miss(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put("soon", 1, task="t", expires=time.time() + 0.2)
    assert store.get("soon") is not None
    time.sleep(0.3)
    assert store.get("soon") is None
    assert [e.key for e in store.entries()] == []


@pytest.mark.parametrize("damage", ["tamper", "truncate", "delete-file"])
def test_a_damaged_entry_is_a_miss_that_says_so_and_is_rewritten(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(tmp_path)
    store.put("big", BIG, task="t")
    (value_file,) = [p for p in (tmp_path / "cache").rglob("*.val")]
    if damage == "tamper":
        data = bytearray(value_file.read_bytes())
        data[-1] ^= 1
        value_file.write_bytes(bytes(data))
    elif damage == "truncate":
        value_file.write_bytes(value_file.read_bytes()[:1000])
    else:
        value_file.unlink()
    with caplog.at_level(logging.WARNING, logger="headwater.cache"):
        assert store.get("big") is None
    assert "cache entry big is unusable" in caplog.text
    assert [e.key for e in store.entries()] == []
    store.put("big", BIG, task="t")
    hit = store.get("big")
    assert hit is not None and hit.value == BIG


def test_an_entry_signed_with_another_key_is_never_unpickled(tmp_path: Path) -> None:
    """A forged entry (here: one from a cache with another key, whose payload would run code
    when unpickled) fails its signature before anything is unpickled."""
    marker = tmp_path / "ran"
    forger = LocalStore(tmp_path / "cache", tmp_path / "other.key")
    forger.put("k", _Boom(str(marker)), task="t")
    assert _store(tmp_path).get("k") is None
    assert not marker.exists()


class _Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.marker, "w"))


def test_listing_clearing_and_sizes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put("a", 1, task="load")
    store.put("b", BIG, task="train")
    store.put("c", 3, task="train")
    assert sorted((e.key, e.task) for e in store.entries()) == [("a", "load"), ("b", "train"), ("c", "train")]
    stats = store.stats()
    assert stats.entries == 3 and stats.bytes > len(BIG)
    assert store.clear(task="train") == 2
    assert [e.key for e in store.entries()] == ["a"]
    assert store.clear(older_than=3600) == 0
    assert store.clear() == 1


def test_the_size_limit_evicts_the_least_recently_used(tmp_path: Path) -> None:
    store = _store(tmp_path, size_limit=3 * len(BIG))
    for i in range(8):
        store.put(f"k{i}", BIG + bytes([i]), task="t")
    assert store.get("k7") is not None
    assert store.get("k0") is None
    assert sum(e.size for e in store.entries()) <= 4 * len(BIG)


def test_a_home_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)
    try:
        if os.access(home, os.W_OK):  # running as a user that ignores permissions (root)
            blocker = tmp_path / "file"
            blocker.write_text("")
            directory, key = blocker / "cache", blocker / "cache.key"
        else:
            directory, key = home / "cache", home / "cache.key"
        with pytest.raises(CacheStoreError, match="cannot be used.*HEADWATER_HOME"):
            LocalStore(directory, key)
    finally:
        home.chmod(0o700)
