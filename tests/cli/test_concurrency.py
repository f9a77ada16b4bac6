"""`headwater concurrency-limit create/ls/inspect/reset/delete --json`, on the home's database
and through a server's URL; a server on the same home sees limits the CLI wrote directly."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.api import Holder, SlotClient, StateServer
from headwater.cli import main
from tests.api.conftest import TOKEN


@pytest.fixture
def server() -> Iterator[StateServer]:
    """A server on this test's home, as a flow's embedded one would be."""
    srv = StateServer(Path(os.environ["HEADWATER_HOME"]), port=0, token=TOKEN, synchronous="NORMAL")
    srv.start()
    yield srv
    srv.stop(0.5)


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_the_verbs_on_the_homes_database(capsys: pytest.CaptureFixture[str]) -> None:
    made = _json(capsys, "concurrency-limit", "create", "warehouse", "5")
    assert made == {**made, "name": "warehouse", "limit": 5, "active": 0, "holders": []}
    _json(capsys, "concurrency-limit", "create", "api", "2", "--slot-decay-per-second", "0.5")
    listed = _json(capsys, "concurrency-limit", "ls")
    assert [(x["name"], x["limit"], x["slot_decay_per_second"]) for x in listed] == [  # type: ignore[union-attr]
        ("api", 2, 0.5), ("warehouse", 5, 0.0)]
    assert _json(capsys, "concurrency-limit", "reset", "api") == {"reset": "api"}
    assert _json(capsys, "concurrency-limit", "delete", "api") == {"deleted": "api"}
    assert main(["concurrency-limit", "inspect", "api"]) == 1
    assert "no concurrency limit named 'api'" in capsys.readouterr().err
    assert main(["concurrency-limit", "ls"]) == 0
    assert "warehouse" in capsys.readouterr().out


def test_inspect_shows_holders_and_a_running_server_sees_direct_changes(
    capsys: pytest.CaptureFixture[str], server: StateServer
) -> None:
    # The server runs on this home; the CLI (no HEADWATER_API_URL) writes the database.
    _json(capsys, "concurrency-limit", "create", "warehouse", "1")
    with SlotClient(server.url, token=TOKEN) as client:
        lease = client.acquire(["warehouse"], holder=Holder("task run load-3"), timeout=2)
        shown = _json(capsys, "concurrency-limit", "inspect", "warehouse")
        holder = shown["holders"][0]  # type: ignore[index]
        assert shown["active"] == 1 and holder["label"] == "task run load-3"  # type: ignore[index]
        assert holder["pid"] == os.getpid() and holder["lease_id"] == lease.lease_id
        assert holder["expires_at"] > holder["acquired_at"]
        assert main(["concurrency-limit", "inspect", "warehouse"]) == 0
        assert "task run load-3" in capsys.readouterr().out
        _json(capsys, "concurrency-limit", "reset", "warehouse")
        assert client.read_limit("warehouse").active == 0  # the server reloaded
        _json(capsys, "concurrency-limit", "create", "warehouse", "0")
        assert client.read_limit("warehouse").limit == 0
        _json(capsys, "concurrency-limit", "delete", "warehouse")
        deadline = time.monotonic() + 3
        while client.limited(["warehouse"]):
            assert time.monotonic() < deadline
            client.list_limits()  # any call reads the change counter
            time.sleep(0.01)


def test_the_verbs_through_a_server_url(
    capsys: pytest.CaptureFixture[str], server: StateServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_API_URL", server.url)
    monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
    _json(capsys, "concurrency-limit", "create", "remote", "3")
    with SlotClient(server.url, token=TOKEN) as client:
        held = client.acquire(["remote"], 2)
        client.request(["remote"], 2, on_grant=lambda lease: None, on_error=print)
        shown = _json(capsys, "concurrency-limit", "inspect", "remote")
        assert (shown["active"], shown["waiting"]) == (2, 1)  # type: ignore[index]
        assert _json(capsys, "concurrency-limit", "ls")[0]["waiting"] == 1  # type: ignore[index]
        _json(capsys, "concurrency-limit", "reset", "remote")
        _json(capsys, "concurrency-limit", "delete", "remote")
        assert main(["concurrency-limit", "delete", "remote"]) == 1
        assert "no concurrency limit named 'remote'" in capsys.readouterr().err
        held.release()
