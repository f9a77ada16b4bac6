"""The key that encrypts block secret fields, and where it comes from.

In order:

1. `HEADWATER_SECRET_KEY`: a Fernet key (32 bytes, urlsafe base64), e.g. from a secrets
   manager or a CI secret. A malformed one is an error saying how to make one.
2. A key file: `HEADWATER_SECRET_KEY_FILE`, else `$XDG_CONFIG_HOME/headwater/secret.key`
   (`~/.config/headwater/secret.key`). Made on first need, mode 0600 in a 0700 directory.

The key never sits next to the data it protects: a key file inside `HEADWATER_HOME` (where
the state service's database is) is refused, so a copy of the home, a backup of it or a
stolen disk image of the service does not carry the means to read its secrets. (Prefect keeps
its key in the same database.) Every process that loads a block with secrets, a worker's
too, needs the same key: set `HEADWATER_SECRET_KEY`, or copy the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from ..errors import SecretKeyError

ENV_KEY = "HEADWATER_SECRET_KEY"
ENV_KEY_FILE = "HEADWATER_SECRET_KEY_FILE"
MAKE_ONE = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


@dataclass(frozen=True, slots=True)
class SecretKey:
    """A usable key and where it came from (`source`: `HEADWATER_SECRET_KEY` or the key file's
    path), so an error can say which key was in use."""

    fernet: Fernet
    source: str


def default_key_file() -> Path:
    """`$XDG_CONFIG_HOME/headwater/secret.key`, `~/.config/headwater/secret.key` without it."""
    config = os.environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(config) if config else Path.home() / ".config"
    return base / "headwater" / "secret.key"


def key_file_path() -> Path:
    """The key file this process uses: `HEADWATER_SECRET_KEY_FILE` or the default."""
    configured = os.environ.get(ENV_KEY_FILE, "").strip()
    return Path(configured).expanduser() if configured else default_key_file()


def load_key() -> SecretKey:
    """The key in use (see the module docstring); the key file is made on first need."""
    text = os.environ.get(ENV_KEY, "").strip()
    if text:
        return SecretKey(_fernet(text, ENV_KEY), ENV_KEY)
    path = key_file_path()
    _refuse_inside_home(path)
    if not path.exists():
        _create_key_file(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(
            f"the secret key file {path} cannot be read ({type(exc).__name__}: {exc}); fix its "
            f"permissions, or set {ENV_KEY}"
        ) from exc
    return SecretKey(_fernet(text, f"the key file {path}"), str(path))


def _fernet(text: str, source: str) -> Fernet:
    try:
        return Fernet(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SecretKeyError(
            f"{source} is not a Fernet key (32 bytes, urlsafe base64: 44 characters ending in "
            f"'='); make one with: {MAKE_ONE}"
        ) from exc


def _refuse_inside_home(path: Path) -> None:
    from ..api.settings import get_settings

    home = get_settings().home.expanduser().resolve()
    if path.resolve().is_relative_to(home):
        raise SecretKeyError(
            f"the secret key file {path} is inside HEADWATER_HOME ({home}): the key must not sit "
            f"next to the data it protects. Point {ENV_KEY_FILE} outside it (the default is "
            f"{default_key_file()}), or set {ENV_KEY}"
        )


def _create_key_file(path: Path) -> None:
    """A new key at `path`, 0600 in a 0700 directory. Written to a private temporary name and
    linked into place, so no process ever reads half a key; a racing process's key is kept."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(Fernet.generate_key() + b"\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    except OSError as exc:
        raise SecretKeyError(
            f"the secret key file {path} cannot be made ({type(exc).__name__}: {exc}); set "
            f"{ENV_KEY_FILE} to a writable place outside HEADWATER_HOME, or set {ENV_KEY}"
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
