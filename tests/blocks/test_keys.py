"""The key for secret fields: from HEADWATER_SECRET_KEY or a 0600 key file outside
HEADWATER_HOME, and a clear error for a malformed key, a key file in the home, a wrong key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from headwater.blocks import Secret
from headwater.blocks.keys import MAKE_ONE, default_key_file, load_key
from headwater.blocks.secrets_at_rest import decrypt, encrypt
from headwater.errors import SecretKeyError, SecretKeyMismatch

from .conftest import home


def test_the_key_file_is_made_0600_in_a_0700_directory_outside_the_home(tmp_path: Path) -> None:
    key = load_key()
    path = tmp_path / "config" / "headwater" / "secret.key"
    assert key.source == str(path) == str(default_key_file())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.resolve().is_relative_to(home().resolve())
    assert load_key().fernet.decrypt(key.fernet.encrypt(b"same key")) == b"same key"  # read back, not remade
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no partial file left


def test_a_key_file_inside_headwater_home_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_SECRET_KEY_FILE", str(home() / "keys" / "secret.key"))
    with pytest.raises(SecretKeyError, match="inside HEADWATER_HOME.*must not sit next to the data"):
        load_key()
    assert not (home() / "keys").exists()


def test_a_malformed_environment_key_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_SECRET_KEY", "not-a-key")
    with pytest.raises(SecretKeyError, match="HEADWATER_SECRET_KEY is not a Fernet key") as caught:
        load_key()
    assert MAKE_ONE in str(caught.value)


def test_the_environment_key_wins_and_round_trips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEADWATER_SECRET_KEY", Fernet.generate_key().decode())
    doc = encrypt("p4ssw0rd")
    assert set(doc) == {"$secret"} and "p4ssw0rd" not in doc["$secret"]
    assert decrypt(doc, "field 'x'") == "p4ssw0rd"
    assert not (tmp_path / "config").exists()  # no key file made


def test_a_secret_saved_under_another_key_is_a_clear_error_not_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_SECRET_KEY", Fernet.generate_key().decode())
    Secret(value="s3cr3t-value").save("db-password")
    monkeypatch.setenv("HEADWATER_SECRET_KEY", Fernet.generate_key().decode())
    with pytest.raises(SecretKeyMismatch) as caught:
        Secret.load("db-password")
    message = str(caught.value)
    assert "block 'secret/db-password', field 'value'" in message
    assert "key in use (HEADWATER_SECRET_KEY)" in message and "saved with another key" in message
    assert caught.value.where == "block 'secret/db-password', field 'value'"
    # The key file is named when it is the key in use.
    monkeypatch.delenv("HEADWATER_SECRET_KEY")
    with pytest.raises(SecretKeyMismatch, match=f"the key file {default_key_file()}"):
        Secret.load("db-password")
