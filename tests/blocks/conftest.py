"""Each test of blocks: its own HEADWATER_HOME (the root conftest), its own embedded state
service in that home, its own key file location, and no secret remembered from another test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.api import reset_recorder
from headwater.runtime.secret_masking import forget_secrets


@pytest.fixture(autouse=True)
def _own_service_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("HEADWATER_SECRET_KEY", raising=False)
    monkeypatch.delenv("HEADWATER_SECRET_KEY_FILE", raising=False)
    reset_recorder()
    forget_secrets()
    yield config
    reset_recorder()
    forget_secrets()


def home() -> Path:
    from headwater.api.settings import get_settings

    path: Path = get_settings().home
    return path
