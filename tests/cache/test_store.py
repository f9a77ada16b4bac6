"""`LocalStore`: signed entries in a real diskcache directory; tampering, truncation, a lost
file and an unreadable payload are misses that delete the entry, never an unpickled forgery.
Also claims (single flight), run notes, bodies made elsewhere, and values in result_storage."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from headwater.cache.entries import CacheValueMissing, RunNote, make_body
from headwater.cache.store import LocalStore, read_store_id
from headwater.errors import CacheStoreError

BIG = b"x" * 100_000  # diskcache keeps values this size in files of their own


def _store(tmp_path: Path, **kwargs: int) -> LocalStore:
    return LocalStore(tmp_path / "cache", tmp_path / "cache.key", **kwargs)


def test_a_value_comes_back_with_what_it_is(tmp_path: Path) -> None:
    store = _store(tmp_path)
    put = store.put("k1", {"rows": [1, 2, 3]}, task="load", components={"argument 'x'": "ab12"})
    hit = store.get("k1")
    assert hit is not None
    entry, value = hit
    assert value == {"rows": [1, 2, 3]}
    assert entry == put
    assert (entry.key, entry.task, entry.expires, entry.location) == ("k1", "load", None, None)
    assert entry.size > 0 and dict(entry.components) == {"argument 'x'": "ab12"}
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
        "print(s.get('shared')[1])"
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
    assert hit is not None and hit[1] == BIG


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


def test_expiry_is_read_from_the_header(tmp_path: Path) -> None:
    """A body made elsewhere carries its own expiry; the store honours it, not a clock of its own."""
    store = _store(tmp_path)
    later = time.time() + 3600
    _, body = make_body("fresh", 1, task="t", expires=later, components={})
    store.write_body("fresh", body)
    found = store.lookup("fresh")
    assert found is not None and found.expires == later
    _, stale = make_body("stale", 2, task="t", expires=time.time() - 1, components={})
    store.write_body("stale", stale)
    assert store.lookup("stale") is None
    assert store.get("stale") is None


def test_clear_removes_expired_entries_too(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put("gone", BIG, task="old", expires=time.time() + 0.1)
    store.put("kept", 1, task="other")
    assert len(list((tmp_path / "cache").rglob("*.val"))) == 1
    time.sleep(0.2)
    assert store.clear(task="nothing-of-that-name") == 0
    assert list((tmp_path / "cache").rglob("*.val")) == []  # the expired value's file is gone
    assert [e.key for e in store.entries()] == ["kept"]


def test_a_body_round_trips_between_stores_with_different_keys(tmp_path: Path) -> None:
    """What the state service does: read a checked body out of one store, write it into
    another (which signs it with its own key)."""
    source = _store(tmp_path)
    made = source.put("k", {"a": 1}, task="t", components={"task source": "f00d"})
    body = source.read_body("k")
    target = LocalStore(tmp_path / "other", tmp_path / "other.key")
    assert target.write_body("k", body) == made
    assert target.read_body("k") == body
    assert target.load("k") == {"a": 1}
    with pytest.raises(ValueError, match="shorter"):
        target.write_body("bad", b"\x00\x00\x01\x00abc")
    with pytest.raises(CacheValueMissing, match="is gone"):
        target.read_body("never-stored")


def test_the_store_id_is_kept_in_its_directory(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert read_store_id(tmp_path / "cache") == store.store_id
    assert _store(tmp_path).store_id == store.store_id
    assert read_store_id(tmp_path / "nowhere") is None


def test_a_claim_is_one_owners_until_released_or_expired(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert not store.claimed("k")
    assert store.claim("k", "a", ttl=5)
    assert store.claimed("k")
    assert not store.claim("k", "b", ttl=5)
    assert store.renew("k", "a", ttl=5)
    assert not store.renew("k", "b", ttl=5)
    store.release("k", "b")  # not b's to release
    assert store.claimed("k")
    store.release("k", "a")
    assert not store.claimed("k")
    assert store.claim("k", "b", ttl=5)


def test_a_late_release_from_an_expired_lease_keeps_the_new_owners_claim(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.claim("k", "slow", ttl=0.1)
    time.sleep(0.2)
    assert not store.claimed("k")
    assert not store.renew("k", "slow", ttl=5)  # too late: the lease ran out
    assert store.claim("k", "next", ttl=5)
    store.release("k", "slow")
    assert store.claimed("k")
    assert not store.claim("k", "third", ttl=5)


def test_run_notes_and_counts_are_recorded_together(tmp_path: Path) -> None:
    store = _store(tmp_path)
    hit = RunNote("run-1", "load", "k1", {"argument 'x'": "ab"}, "hit", "", time.time())
    skipped = RunNote("run-2", "load", None, {}, "uncacheable", "argument 'f': a _thread.lock", time.time())
    store.record([hit, skipped], hits=1, misses=2)
    assert store.note("run-1") == hit
    assert store.note("run-2") == skipped
    assert store.note("run-3") is None
    assert store.stats()[2:] == (1, 2)
    store.count(hits=2)
    assert store.stats().hits == 3


def test_a_value_in_result_storage_is_checked_when_loaded(tmp_path: Path) -> None:
    """Only the header is kept in the store; the value's file is checked against the signed
    digest, so a changed file is a miss, never loaded."""
    store = _store(tmp_path)
    results = tmp_path / "results"
    entry = store.put("ext", BIG, task="t", storage=f"file://{results}")
    assert entry.location == f"file://{results}/ext" and entry.digest is not None
    assert (results / "ext").exists()
    assert len(store.read_body("ext")) < 1000  # the header alone
    assert list((tmp_path / "cache").rglob("*.val")) == []
    hit = store.get("ext")
    assert hit is not None and hit[1] == BIG
    data = bytearray((results / "ext").read_bytes())
    data[-1] ^= 1
    (results / "ext").write_bytes(bytes(data))
    with pytest.raises(CacheValueMissing, match="not what was stored"):
        store.load("ext")
    assert store.lookup("ext") is None  # deleted as unusable
    store.put("ext2", 5, task="t", storage=str(results))  # a bare directory path works too
    (results / "ext2").unlink()
    assert store.get("ext2") is None
