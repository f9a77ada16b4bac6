"""Fixtures: an in-process state server on 127.0.0.1:0 over SQLite in the test's HEADWATER_HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.api import StateClient, StateServer
from headwater.api.automation_store import AutomationStore
from headwater.api.event_store import EventStore
from headwater.api.settings import DB_FILENAME
from headwater.api.storage import Storage

from .helpers import start_server_process, stop_process

TOKEN = "test-token-123"


@pytest.fixture
def home() -> Path:
    return Path(os.environ["HEADWATER_HOME"])


@pytest.fixture
def server(home: Path) -> Iterator[StateServer]:
    srv = StateServer(home, port=0, token=TOKEN, heartbeat_timeout=1.0, heartbeat_interval=0.25,
                      synchronous="NORMAL")
    srv.start()
    yield srv
    srv.stop(0.5)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[str]:
    """A standalone `headwater server start` process with TOKEN; yields its URL."""
    proc, url = start_server_process(tmp_path / "server-process-home", "--token", TOKEN)
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def client(server: StateServer) -> Iterator[StateClient]:
    with StateClient(server.url, token=TOKEN, retry_for=2.0) as c:
        yield c


@pytest.fixture
def automation_stores(home: Path) -> Iterator[tuple[AutomationStore, EventStore]]:
    """The automation and event stores of a new home's database, as the service opens them."""
    storage = Storage(home / DB_FILENAME)
    automations = AutomationStore(home / DB_FILENAME, beside_storage=True)
    events = EventStore(home / DB_FILENAME, beside_storage=True)
    yield automations, events
    automations.close()
    events.close()
    storage.close()
