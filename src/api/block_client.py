"""The block and variable calls, from a client (`block_service.py`). `block_client()` talks
to the server at `HEADWATER_API_URL`, or on the embedded default to this process's own
state service (started on first use), as every other call does."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from .block_store import BlockDocument, BlockType, VariableInfo
from .client import Target, UnaryCaller, _Call
from .deploy_models import JsonOut
from .errors import block_error_for_status
from .process_recorders import recorder_target
from .settings import get_settings


def _call(method: str, write: bool = False) -> _Call[Any]:
    return _Call(method, JsonOut, lambda out: json.loads(out.body), write=write)


def _document(d: dict[str, Any]) -> BlockDocument:
    return BlockDocument(UUID(d["id"]), d["type_slug"], d["name"], d["data"], d["type_version"], d["created"], d["updated"])


def _variable(d: dict[str, Any]) -> VariableInfo:
    return VariableInfo(d["name"], d["value"], tuple(d["tags"]), d["created"], d["updated"])


class BlockClient(UnaryCaller):
    """Blocking client of the block and variable calls; thread-safe."""

    _error_for = staticmethod(block_error_for_status)

    def __init__(self, target: Target | str | None, *, timeout: float = 10.0, retry_for: float = 30.0) -> None:
        super().__init__(target, timeout=timeout, retry_for=retry_for)

    def register_type(self, slug: str, schema: dict[str, Any], version: str) -> None:
        self._call(_call("RegisterBlockType", True), {"slug": slug, "type_schema": json.dumps(schema), "version": version})

    def list_types(self) -> list[BlockType]:
        return [BlockType(d["slug"], d["schema"], d["version"], d["updated"]) for d in self._call(_call("ListBlockTypes"), {})]

    def save_block(self, type_slug: str, name: str, data: dict[str, Any], *, overwrite: bool = False,
                   type_version: str = "1") -> BlockDocument:  # fmt: skip
        body = {"type_slug": type_slug, "name": name, "data": json.dumps(data), "overwrite": overwrite,
                "type_version": type_version}  # fmt: skip
        return _document(self._call(_call("SaveBlock", True), body))

    def read_block(self, type_slug: str, name: str) -> BlockDocument:
        return _document(self._call(_call("ReadBlock"), {"type_slug": type_slug, "name": name}))

    def list_blocks(self, type_slug: str | None = None) -> list[BlockDocument]:
        body = {} if type_slug is None else {"type_slug": type_slug}
        return [_document(d) for d in self._call(_call("ListBlocks"), body)]

    def delete_block(self, type_slug: str, name: str) -> None:
        self._call(_call("DeleteBlock", True), {"type_slug": type_slug, "name": name})

    def set_variable(self, name: str, value: Any, *, overwrite: bool = False, tags: Sequence[str] = ()) -> VariableInfo:
        body = {"name": name, "value": json.dumps(value), "overwrite": overwrite, "tags": list(tags)}
        return _variable(self._call(_call("SetVariable", True), body))

    def get_variable(self, name: str) -> VariableInfo | None:
        found = self._call(_call("GetVariable"), {"name": name})
        return None if found is None else _variable(found)

    def list_variables(self) -> list[VariableInfo]:
        return [_variable(d) for d in self._call(_call("ListVariables"), {})]

    def unset_variable(self, name: str) -> bool:
        return bool(self._call(_call("UnsetVariable", True), {"name": name}))


def block_client(*, timeout: float = 10.0, retry_for: float = 30.0) -> BlockClient:
    """A client of the server at `HEADWATER_API_URL`, or of this process's own service."""
    settings = get_settings()
    if settings.api_url:
        target = Target.resolve(settings.api_url, settings.api_token, settings.api_tls_ca)
    else:
        url, token, tls_ca = recorder_target()
        target = Target.resolve(url, token, Path(tls_ca) if tls_ca else None)
    return BlockClient(target, timeout=timeout, retry_for=retry_for)
