"""The result cache through a real state server on 127.0.0.1: `RemoteStore` answers as
`LocalStore` does, shares entries with a `LocalStore` on the server's directory both ways,
and the server refuses what it must (no token, a malformed body, a value too big to carry)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import msgpack
import pytest

from headwater.api import (
    ClientConfigError,
    InvalidPayload,
    RemoteStore,
    StateServer,
    Unauthenticated,
    open_cache_store,
)
from headwater.api import models as m
from headwater.api.cache_client import CACHE_WRITE
from headwater.api.client import Target
from headwater.api.service import method_path
from headwater.api.settings import Settings
from headwater.cache.entries import CacheValueMissing, RunNote, make_body
from headwater.cache.store import LocalStore
from headwater.errors import CacheStoreError

from .conftest import TOKEN

K1, K2, K3 = "a1" * 32, "b2" * 32, "c3" * 32
BIG = b"x" * 100_000  # kept by diskcache in a file of its own


@pytest.fixture
def remote(server: StateServer) -> Iterator[RemoteStore]:
    with RemoteStore(server.url, token=TOKEN, retry_for=2.0) as store:
        yield store


def _local(server: StateServer) -> LocalStore:
    """The server's own store, opened directly, as a process on its machine would."""
    return LocalStore(server.home / "cache", server.home / "cache.key")


def test_a_server_that_never_caches_creates_no_cache(server: StateServer, remote: RemoteStore) -> None:
    assert not (server.home / "cache").exists()
    assert remote.lookup(K1) is None
    assert (server.home / "cache").is_dir()
    assert remote.store_id == _local(server).store_id


def test_values_cross_between_remote_and_local_stores(server: StateServer, remote: RemoteStore) -> None:
    written = remote.put(K1, {"rows": [1, 2]}, task="load", components={"argument 'x'": "d1"})
    local = _local(server)
    hit = local.get(K1)
    assert hit is not None and hit == (written, {"rows": [1, 2]})
    local.put(K2, BIG, task="train", expires=time.time() + 60)
    found = remote.lookup(K2)
    assert found is not None and (found.task, found.size > len(BIG)) == ("train", True)
    assert remote.load(K2) == BIG
    got = remote.get(K2)
    assert got is not None and got[1] == BIG and got[0] == found
    assert remote.get(K3) is None
    assert remote.stats() == (2, written.size + found.size, 2, 1)
    assert sorted(e.key for e in remote.entries()) == [K1, K2]
    assert [e.key for e in remote.entries_of("train")] == [K2]
    remote.delete(K2)
    assert remote.lookup(K2) is None and local.lookup(K2) is None


def test_bodies_round_trip_unchanged(remote: RemoteStore) -> None:
    entry, body = make_body(K1, [1, 2, 3], task="t", expires=None, components={"task source": "5e"})
    assert remote.write_body(K1, body) == entry
    assert remote.read_body(K1) == body
    with pytest.raises(CacheValueMissing, match="is gone"):
        remote.read_body(K2)
    with pytest.raises(CacheValueMissing, match="is gone"):
        remote.load(K2)


def test_an_expired_entry_is_a_miss_over_the_wire(remote: RemoteStore) -> None:
    remote.put(K1, 1, task="t", expires=time.time() - 1)
    assert remote.lookup(K1) is None
    remote.put(K2, 2, task="t", expires=time.time() - 1)
    assert remote.get(K2) is None
    assert remote.stats().entries == 0


def test_claims_over_the_wire(remote: RemoteStore, server: StateServer) -> None:
    assert remote.claim(K1, "worker-a", ttl=0.2)
    assert remote.claimed(K1) and _local(server).claimed(K1)
    assert not remote.claim(K1, "worker-b", ttl=5)
    assert remote.renew(K1, "worker-a", ttl=0.2)
    assert not remote.renew(K1, "worker-b", ttl=5)
    time.sleep(0.3)
    assert not remote.claimed(K1)
    assert remote.claim(K1, "worker-b", ttl=5)
    remote.release(K1, "worker-a")  # a late release from the expired lease
    assert remote.claimed(K1)
    remote.release(K1, "worker-b")
    assert not remote.claimed(K1)


def test_run_notes_counts_and_clearing(remote: RemoteStore, server: StateServer) -> None:
    note = RunNote("3f0c", "load", K1, {"argument 'x'": "d1"}, "miss", "", time.time())
    remote.record([note], hits=2, misses=1)
    assert remote.note("3f0c") == note
    assert _local(server).note("3f0c") == note
    assert remote.note("nope") is None
    remote.count(misses=True)  # the engine counts with booleans
    assert remote.stats()[2:] == (2, 2)
    remote.put(K1, 1, task="load")
    remote.put(K2, 2, task="train")
    remote.put(K3, 3, task="train")
    assert remote.clear(older_than=3600) == 0
    assert remote.clear(task="train") == 2
    assert remote.clear() == 1


def test_entries_come_in_pages(remote: RemoteStore) -> None:
    keys = [f"{i:064x}" for i in range(25)]
    for key in keys:
        remote.put(key, 0, task="even" if int(key, 16) % 2 == 0 else "odd")
    remote.page_size = 10
    assert [e.key for e in remote.entries()] == keys
    assert [e.key for e in remote.entries_of("odd")] == keys[1::2]
    assert remote.stats().entries == 25


def test_a_tampered_entry_on_the_server_is_a_miss_for_a_remote_reader(
    server: StateServer, remote: RemoteStore, caplog: pytest.LogCaptureFixture
) -> None:
    remote.put(K1, BIG, task="t")
    (value_file,) = (server.home / "cache").rglob("*.val")
    data = bytearray(value_file.read_bytes())
    data[-1] ^= 1
    value_file.write_bytes(bytes(data))
    with pytest.raises(CacheValueMissing, match="does not carry this cache's signature"):
        remote.load(K1)
    assert remote.lookup(K1) is None  # the server deleted it
    remote.put(K2, BIG, task="t")
    next(iter((server.home / "cache").rglob("*.val"))).unlink()
    with caplog.at_level(logging.WARNING, logger="headwater.cache"):
        assert remote.get(K2) is None


def test_a_result_storage_value_is_written_and_checked_by_the_caller(
    server: StateServer, remote: RemoteStore, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    entry = remote.put(K1, BIG, task="t", storage=f"file://{results}")
    assert (results / K1).exists()
    assert list((server.home / "cache").rglob("*.val")) == []  # only the header went over
    assert remote.load(K1) == BIG
    assert _local(server).load(K1) == BIG
    (results / K1).write_bytes(b"not the value")
    with pytest.raises(CacheValueMissing, match="not what was stored"):
        remote.load(K1)
    assert remote.lookup(K1) is None
    assert entry.location == f"file://{results}/{K1}"


def test_a_value_too_big_for_a_message_says_to_set_result_storage(remote: RemoteStore, server: StateServer) -> None:
    huge = os.urandom(m.MAX_CACHE_BODY)
    with pytest.raises(CacheStoreError, match="set result_storage"):
        remote.put(K1, huge, task="t")
    _local(server).put(K2, huge, task="t")  # written directly on the server's machine
    assert remote.lookup(K2) is not None
    with pytest.raises(CacheValueMissing, match="set result_storage"):
        remote.load(K2)


def test_malformed_requests_are_refused_naming_what_is_wrong(remote: RemoteStore) -> None:
    with pytest.raises(InvalidPayload, match="the body is not a cache entry"):
        remote._call(CACHE_WRITE, {"key": K1, "body": b"\x00\x00\x01\x00abc"})
    _, good = make_body(K1, 1, task="t", expires=None, components={})
    header = msgpack.packb([1, 2, 3])  # not a header's seven fields
    with pytest.raises(InvalidPayload, match="the body is not a cache entry"):
        remote._call(CACHE_WRITE, {"key": K1, "body": len(header).to_bytes(4, "big") + header})
    bad_task = msgpack.packb([123, 0.0, None, 0, {}, None, None])  # a task name that is not text
    with pytest.raises(InvalidPayload, match="header is not a cache entry's.*task"):
        remote._call(CACHE_WRITE, {"key": K1, "body": len(bad_task).to_bytes(4, "big") + bad_task})
    with pytest.raises(InvalidPayload, match="key"):
        remote.put("not-hex!", 1, task="t")
    with pytest.raises(InvalidPayload, match="ttl"):
        remote.claim(K1, "a", ttl=-1)
    assert remote.lookup(K1) is None
    assert remote.write_body(K1, good).key == K1


def test_every_cache_call_needs_the_token(server: StateServer) -> None:
    with RemoteStore(server.url, token="wrong", retry_for=1.0) as intruder:
        for call in (
            lambda: intruder.lookup(K1), lambda: intruder.put(K1, 1, task="t"),
            lambda: intruder.claim(K1, "a", 5), lambda: intruder.stats(), lambda: intruder.clear(),
            lambda: intruder.note("r"), lambda: list(intruder.entries()), lambda: intruder.store_id,
        ):
            with pytest.raises(Unauthenticated, match="invalid bearer token"):
                call()
    channel = grpc.insecure_channel(server.url.removeprefix("grpc://"))
    try:
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(method_path("CacheStats"))(b"\x80", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()
    assert not (server.home / "cache").exists()  # refused before the store was opened


def test_a_home_the_server_cannot_write_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    srv = StateServer(home, port=0, token=TOKEN, synchronous="NORMAL")
    srv.start()
    try:
        (home / "cache.key").mkdir()  # the key file cannot be made: as a read-only home would
        with RemoteStore(srv.url, token=TOKEN, retry_for=1.0) as store:
            with pytest.raises(CacheStoreError, match="on the state service: the result cache .* cannot be used"):
                store.lookup(K1)
    finally:
        srv.stop(0.5)


def test_open_cache_store_picks_the_store_a_tool_should_use(server: StateServer, tmp_path: Path) -> None:
    plain = open_cache_store(Settings(home=tmp_path / "elsewhere"))
    assert isinstance(plain, LocalStore) and plain.directory == tmp_path / "elsewhere" / "cache"
    plain.close()
    with RemoteStore(server.url, token=TOKEN) as remote:
        remote_id = remote.store_id
    elsewhere = open_cache_store(Settings(home=tmp_path / "elsewhere", api_url=server.url, api_token=TOKEN))
    assert isinstance(elsewhere, RemoteStore) and elsewhere.store_id == remote_id
    elsewhere.close()
    same_home = open_cache_store(Settings(home=server.home, api_url=server.url, api_token=TOKEN))
    assert isinstance(same_home, LocalStore) and same_home.store_id == remote_id
    same_home.close()
    target = Target.resolve(server.url, TOKEN, None)
    assert isinstance(RemoteStore(target).stats().hits, int)
    with pytest.raises(ClientConfigError):
        RemoteStore("http://example.com")
