"""Blocks and variables in SQLite (schema v11): typed configuration kept in one place.

A block document is (type, name) -> a JSON document the service does not interpret: secret
fields arrive encrypted by the client that saved them (`headwater.blocks`), and references to
other blocks as `{"$ref": {...}}`, resolved by the client that loads them (so rotating one
credentials block changes every block that refers to it). A block type keeps the JSON schema
and version of the class that last saved a document of it, for `headwater block check`.

A variable is a name -> a JSON value, size-limited, with tags.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from .errors import BlockExists, BlockNotFound, InvalidVariable, VariableExists
from .locked_store import LockedStore

#: A variable's value, as JSON text, at most this long (Prefect's limit is 5,000 characters).
MAX_VARIABLE_CHARS = 5_000
#: A block document, as JSON text, at most this long.
MAX_BLOCK_CHARS = 512 * 1024
_VARIABLE_NAME = re.compile(r"^[a-z0-9_][a-z0-9_\-.]{0,254}$")


@dataclass(frozen=True, slots=True)
class BlockType:
    slug: str
    schema: dict[str, Any]
    version: str
    updated: float


@dataclass(frozen=True, slots=True)
class BlockDocument:
    id: UUID
    type_slug: str
    name: str
    data: dict[str, Any]
    type_version: str
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class VariableInfo:
    name: str
    value: Any
    tags: tuple[str, ...]
    created: float
    updated: float


_BLOCK_COLUMNS = "id, type_slug, name, data, type_version, created, updated"


def _document(row: Any) -> BlockDocument:
    return BlockDocument(UUID(bytes=row[0]), row[1], row[2], json.loads(row[3]), row[4], row[5], row[6])


def _variable(row: Any) -> VariableInfo:
    return VariableInfo(row[0], json.loads(row[1]), tuple(json.loads(row[2])), row[3], row[4])


class BlockStore(LockedStore):
    """See the module docstring; thread-safe (one connection, one lock)."""

    # -- types -----------------------------------------------------------------------------

    def register_type(self, slug: str, schema: dict[str, Any], version: str, now: float | None = None) -> None:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO block_types (slug, schema, version, updated) VALUES (?, ?, ?, ?) ON CONFLICT (slug) "
                "DO UPDATE SET schema = excluded.schema, version = excluded.version, updated = excluded.updated",
                (slug, json.dumps(schema), version, time.time() if now is None else now),
            )

    def list_types(self) -> list[BlockType]:
        return [BlockType(s, json.loads(schema), v, u)
                for s, schema, v, u in self._read("SELECT slug, schema, version, updated FROM block_types ORDER BY slug")]  # fmt: skip

    # -- documents -------------------------------------------------------------------------

    def save_block(
        self, type_slug: str, name: str, data: dict[str, Any], type_version: str, *, overwrite: bool = False,
        now: float | None = None,
    ) -> BlockDocument:
        now = time.time() if now is None else now
        text = json.dumps(data)
        if len(text) > MAX_BLOCK_CHARS:
            raise InvalidVariable(f"block {type_slug}/{name}: its document is {len(text)} characters, over {MAX_BLOCK_CHARS}")
        with self._write() as cur:
            found = cur.execute("SELECT id FROM blocks WHERE type_slug = ? AND name = ?", (type_slug, name)).fetchone()
            if found is not None and not overwrite:
                raise BlockExists(
                    f"block {type_slug}/{name} exists already; save it with overwrite=True to replace it"
                )
            if found is None:
                ident = uuid.uuid4().bytes
                cur.execute(
                    f"INSERT INTO blocks ({_BLOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (ident, type_slug, name, text, type_version, now, now),
                )
            else:
                ident = found[0]
                cur.execute("UPDATE blocks SET data = ?, type_version = ?, updated = ? WHERE id = ?",
                            (text, type_version, now, ident))  # fmt: skip
            return _document(cur.execute(f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE id = ?", (ident,)).fetchone())

    def read_block(self, type_slug: str, name: str) -> BlockDocument:
        rows = self._read(f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE type_slug = ? AND name = ?", (type_slug, name))
        if not rows:
            raise BlockNotFound(f"no block {type_slug}/{name}; `headwater block ls` lists the blocks there are")
        return _document(rows[0])

    def list_blocks(self, type_slug: str | None = None) -> list[BlockDocument]:
        where, args = ("WHERE type_slug = ?", (type_slug,)) if type_slug else ("", ())
        return [_document(r) for r in self._read(f"SELECT {_BLOCK_COLUMNS} FROM blocks {where} ORDER BY type_slug, name", args)]

    def delete_block(self, type_slug: str, name: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM blocks WHERE type_slug = ? AND name = ?", (type_slug, name))
            if cur.rowcount == 0:
                raise BlockNotFound(f"no block {type_slug}/{name}; `headwater block ls` lists the blocks there are")

    # -- variables -------------------------------------------------------------------------

    def set_variable(
        self, name: str, value: Any, *, overwrite: bool = False, tags: tuple[str, ...] = (), now: float | None = None,
    ) -> VariableInfo:
        if not _VARIABLE_NAME.match(name):
            raise InvalidVariable(
                f"variable name {name!r} is refused: lower-case letters, digits, '_', '-' and '.', at most 255"
            )
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidVariable(f"variable {name!r}: its value is not JSON ({exc})") from None
        if len(text) > MAX_VARIABLE_CHARS:
            raise InvalidVariable(
                f"variable {name!r}: its value is {len(text)} characters as JSON, over the limit of "
                f"{MAX_VARIABLE_CHARS}; keep large data in a block or in storage and put its address in the variable"
            )
        now = time.time() if now is None else now
        with self._write() as cur:
            found = cur.execute("SELECT 1 FROM variables WHERE name = ?", (name,)).fetchone()
            if found is not None and not overwrite:
                raise VariableExists(f"variable {name!r} exists already; set it with overwrite=True to replace it")
            cur.execute(
                "INSERT INTO variables (name, value, tags, created, updated) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) "
                "DO UPDATE SET value = excluded.value, tags = excluded.tags, updated = excluded.updated",
                (name, text, json.dumps(list(tags)), now, now),
            )
            return _variable(cur.execute("SELECT name, value, tags, created, updated FROM variables WHERE name = ?", (name,)).fetchone())

    def get_variable(self, name: str) -> VariableInfo | None:
        rows = self._read("SELECT name, value, tags, created, updated FROM variables WHERE name = ?", (name,))
        return _variable(rows[0]) if rows else None

    def list_variables(self) -> list[VariableInfo]:
        return [_variable(r) for r in self._read("SELECT name, value, tags, created, updated FROM variables ORDER BY name")]

    def unset_variable(self, name: str) -> bool:
        with self._write() as cur:
            cur.execute("DELETE FROM variables WHERE name = ?", (name,))
            return cur.rowcount > 0
