"""The block and variable calls of the state service (`block_store.py`). Requests are
validated at the edge like every other call's; replies carry their records as JSON text."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictStr

from . import codec
from .block_store import BlockStore
from .deploy_service import _json, _object
from .errors import InvalidVariable
from .models import JsonText, Tags, Wire

Handler = Callable[[bytes], dict[str, Any]]
BLOCK_WRITES = frozenset({"RegisterBlockType", "SaveBlock", "DeleteBlock", "SetVariable", "UnsetVariable"})
Slug = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[a-z0-9][a-z0-9\-_.]*$")]
BlockName = Annotated[StrictStr, Field(min_length=1, max_length=400)]
VariableName = Annotated[StrictStr, Field(min_length=1, max_length=255)]


class BlockTypeIn(Wire):
    slug: Slug
    type_schema: JsonText
    version: Annotated[StrictStr, Field(max_length=64)] = "1"


class SaveBlockIn(Wire):
    type_slug: Slug
    name: BlockName
    data: Annotated[StrictStr, Field(max_length=1024 * 1024)]
    type_version: Annotated[StrictStr, Field(max_length=64)] = "1"
    overwrite: StrictBool = False


class BlockRefIn(Wire):
    type_slug: Slug
    name: BlockName


class ListBlocksIn(Wire):
    type_slug: Slug | None = None


class SetVariableIn(Wire):
    name: VariableName
    value: Annotated[StrictStr, Field(max_length=64 * 1024)]  # JSON text; the store holds it to its limit
    overwrite: StrictBool = False
    tags: Tags = []


class VariableRefIn(Wire):
    name: VariableName


class BlockService:
    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.store = BlockStore(path, synchronous=synchronous, beside_storage=True)

    def close(self) -> None:
        self.store.close()

    def handlers(self) -> dict[str, Handler]:
        return {
            "RegisterBlockType": self.register_type, "ListBlockTypes": self.list_types, "SaveBlock": self.save,
            "ReadBlock": self.read, "ListBlocks": self.list_blocks, "DeleteBlock": self.delete,
            "SetVariable": self.set_variable, "GetVariable": self.get_variable, "ListVariables": self.list_variables,
            "UnsetVariable": self.unset_variable,
        }  # fmt: skip

    def register_type(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(BlockTypeIn, data)
        self.store.register_type(body.slug, _object(body.type_schema, "type_schema"), body.version)
        return _json(None)

    def list_types(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.list_types())

    def save(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(SaveBlockIn, data)
        doc = self.store.save_block(
            body.type_slug, body.name, _object(body.data, "data"), body.type_version, overwrite=body.overwrite
        )
        return _json(doc)

    def read(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(BlockRefIn, data)
        return _json(self.store.read_block(body.type_slug, body.name))

    def list_blocks(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.list_blocks(codec.decode(ListBlocksIn, data).type_slug))

    def delete(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(BlockRefIn, data)
        self.store.delete_block(body.type_slug, body.name)
        return _json(None)

    def set_variable(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(SetVariableIn, data)
        try:
            value = json.loads(body.value)
        except ValueError as exc:
            raise InvalidVariable(f"variable {body.name!r}: its value is not JSON ({exc})") from None
        return _json(self.store.set_variable(body.name, value, overwrite=body.overwrite, tags=tuple(body.tags)))

    def get_variable(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.get_variable(codec.decode(VariableRefIn, data).name))

    def list_variables(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.list_variables())

    def unset_variable(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.unset_variable(codec.decode(VariableRefIn, data).name))
