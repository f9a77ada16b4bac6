"""Shared fixtures: every test gets its own HEADWATER_HOME and config home, so nothing touches
~/.headwater or ~/.config."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path_factory.mktemp("headwater-home")))
    monkeypatch.delenv("HEADWATER_API_URL", raising=False)
    # The secret key file of blocks lives under XDG_CONFIG_HOME: a test's own, never the user's.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
    monkeypatch.delenv("HEADWATER_SECRET_KEY", raising=False)


@pytest.fixture(autouse=True)
def _quiet_run_logs() -> None:
    logging.getLogger("headwater").setLevel(logging.WARNING)
