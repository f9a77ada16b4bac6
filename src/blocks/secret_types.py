"""`SecretJSON` and `SecretDict`: JSON values kept secret, as pydantic's `SecretStr` keeps text.

A field of either type is encrypted at rest (`{"$secret": ..., "$json": true}`), shown as
`**********` by `repr`, `str` and `model_dump(mode="json")`, and marked `"secret": true` in
its block type's schema. `get_secret_value()` returns the plain value; use it where the value
is needed, never to print it. `SecretDict` is the common case: settings whose values are all
secret (`{"key": ..., "secret": ...}` for an fsspec filesystem), its keys shown, its values not.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

MASKED = "**********"


class SecretJSON:
    """A JSON value (text, number, list, dict, ...) that is never shown."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        if isinstance(value, SecretJSON):
            value = value.get_secret_value()
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a {type(self).__name__} holds JSON values only ({exc})") from None
        self._value = value

    def get_secret_value(self) -> Any:
        return self._value

    def masked(self) -> Any:
        """What may be shown: `**********`."""
        return MASKED

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked()!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretJSON) and type(other) is type(self) and other._value == self._value

    def __hash__(self) -> int:
        return hash(json.dumps(self._value, sort_keys=True))

    @classmethod
    def _validate(cls, value: Any) -> SecretJSON:
        return value if isinstance(value, cls) else cls(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: value.masked(), when_used="json"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"writeOnly": True, "secret": True}


class SecretDict(SecretJSON):
    """A dict whose values are secret: its keys are shown, its values never are."""

    __slots__ = ()

    def __init__(self, value: Any = None) -> None:
        if isinstance(value, SecretJSON):
            value = value.get_secret_value()
        value = {} if value is None else value
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise ValueError(f"a SecretDict holds a dict with text keys, not a {type(value).__name__}")
        super().__init__(dict(value))

    def get_secret_value(self) -> dict[str, Any]:
        value: dict[str, Any] = self._value
        return value

    def masked(self) -> dict[str, str]:
        return dict.fromkeys(self._value, MASKED)

    def __getitem__(self, key: str) -> Any:
        return self._value[key]

    def __len__(self) -> int:
        return len(self._value)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "object", "writeOnly": True, "secret": True}
