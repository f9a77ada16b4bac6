"""`Variable`: named JSON values in the state service, Prefect's shape.

    Variable.set("batch_size", 500, tags=["etl"])
    Variable.get("batch_size", default=100)
    Variable.unset("batch_size")

Values are JSON (text, numbers, booleans, None, lists, dicts), at most 5,000 characters as
JSON text; a larger value, a value that is not JSON or a bad name raises `InvalidVariable`,
and setting an existing name without `overwrite=True` raises `VariableExists`. Variables are
not secret: keep credentials in a `Secret` block.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Variable:
    """A variable as stored: its name, value and tags, and when it was made and last set."""

    name: str
    value: Any
    tags: tuple[str, ...] = ()
    created: float = 0.0
    updated: float = 0.0

    @classmethod
    def set(cls, name: str, value: Any, overwrite: bool = False, tags: Sequence[str] | None = None) -> Variable:
        """Store `value` as `name`; see the module docstring for what is refused."""
        from ..api.block_client import block_client
        from ..api.errors import InvalidVariable

        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidVariable(f"variable {name!r}: its value must be JSON ({exc})") from None
        with block_client() as client:
            info = client.set_variable(name, value, overwrite=overwrite, tags=list(tags or ()))
        return cls(info.name, info.value, info.tags, info.created, info.updated)

    @classmethod
    def get(cls, name: str, default: Any = None) -> Any:
        """The value of `name`, or `default` when there is no such variable."""
        from ..api.block_client import block_client

        with block_client() as client:
            info = client.get_variable(name)
        return default if info is None else info.value

    @classmethod
    def unset(cls, name: str) -> bool:
        """Remove `name`; whether it was there."""
        from ..api.block_client import block_client

        with block_client() as client:
            return client.unset_variable(name)
