"""A standalone server for automation tests: a real `headwater server start` with a token,
this process pointed at it; `holder["proc"]` is swapped when a test restarts it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.api import reset_recorder

from ..api.helpers import start_server_process, stop_process

TOKEN = "automation-test-token"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    home = tmp_path / "server-home"
    proc, url = start_server_process(home, "--token", TOKEN)
    monkeypatch.setenv("HEADWATER_API_URL", url)
    monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
    reset_recorder()
    holder = {"proc": proc}
    try:
        yield url, home, holder
    finally:
        reset_recorder()
        stop_process(holder["proc"])
