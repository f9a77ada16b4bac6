"""Blocks, variables and secrets: typed configuration kept in one place (issue #18).

- `Block`: subclass it with pydantic fields; `.save(name)`, `Cls.load(name)`, `.delete()`
  (`core.py`). Secret fields (`SecretStr`, `SecretBytes`, `SecretDict`) are encrypted at
  rest with a key that never sits in `HEADWATER_HOME` (`keys.py`, `secrets_at_rest.py`), and
  every secret loaded is masked in the run logs and parameters this process records.
- Built-ins: `Secret`, `JSON`, `LocalFileSystem`, `RemoteFileSystem`, `SlackWebhook`,
  `EmailServerCredentials` (`builtins.py`).
- `Variable.set / get / unset`: named JSON values (`variables.py`).
- `check_documents()`: every stored document against the classes here (`check.py`).
"""

from __future__ import annotations

from .builtins import JSON as JSON
from .builtins import EmailServerCredentials as EmailServerCredentials
from .builtins import LocalFileSystem as LocalFileSystem
from .builtins import RemoteFileSystem as RemoteFileSystem
from .builtins import Secret as Secret
from .builtins import SlackWebhook as SlackWebhook
from .check import Problem as Problem
from .check import check_documents as check_documents
from .core import Block as Block
from .secret_types import SecretDict as SecretDict
from .secret_types import SecretJSON as SecretJSON
from .variables import Variable as Variable

__all__ = [
    "JSON", "Block", "EmailServerCredentials", "LocalFileSystem", "Problem", "RemoteFileSystem", "Secret",
    "SecretDict", "SecretJSON", "SlackWebhook", "Variable", "check_documents",
]  # fmt: skip
