"""Shared fixtures: every test gets its own HEADWATER_HOME so nothing touches ~/.headwater."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path_factory.mktemp("headwater-home")))
    monkeypatch.delenv("HEADWATER_API_URL", raising=False)


@pytest.fixture(autouse=True)
def _quiet_run_logs() -> None:
    logging.getLogger("headwater").setLevel(logging.WARNING)
