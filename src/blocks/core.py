"""`Block`: typed configuration saved once in the state service, loaded by name anywhere.

A block type is a `Block` subclass (pydantic fields). Defining one registers it here by its
slug (`_block_type_slug`, by default its class name in kebab-case: `SlackWebhook` ->
`slack-webhook`), the key its documents are stored under, with `_block_schema_version`
("1" unless set). `save(name)` registers the type in the service (its JSON schema, secret
fields marked `"secret": true`, and version) and stores the document; `Cls.load(name)`
reads it back, loads the blocks it refers to as they are now (so rotating one credentials
block changes every block that refers to it on its next load), decrypts its secret fields
and validates it into the class. See `documents.py` for the stored form.

The service stores each document as it is given: it never sees a secret in plain text, nor
interprets a reference. Validation happens where the class is, so a document saved by an
older class that no longer fits raises `BlockSchemaMismatch` naming each field and problem;
`check.py` runs that over every stored document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError


from ..errors import BlockSchemaMismatch
from .documents import decode, encode

if TYPE_CHECKING:
    from ..api.block_store import BlockDocument

#: Reads one stored block document: (type slug, name) -> the document.
ReadDocument = Callable[[str, str], "BlockDocument"]

_registry: dict[str, type[Block]] = {}
_KEBAB = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def kebab_case(name: str) -> str:
    """`SlackWebhook` -> `slack-webhook`, `JSON` -> `json`, `S3Bucket` -> `s3-bucket`."""
    return _KEBAB.sub("-", name).lower()


def block_class(slug: str) -> type[Block] | None:
    """The class registered for block type `slug` in this process (the last one defined)."""
    return _registry.get(slug)


def registered_types() -> dict[str, type[Block]]:
    return dict(_registry)


class Block(BaseModel):
    """Base of every block type; see the module docstring."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    _block_type_slug: ClassVar[str] = "block"
    _block_schema_version: ClassVar[str] = "1"

    _block_document_name: str | None = PrivateAttr(default=None)
    _block_document_id: UUID | None = PrivateAttr(default=None)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_block_type_slug" not in cls.__dict__:
            cls._block_type_slug = kebab_case(cls.__name__)
        _registry[cls._block_type_slug] = cls  # a redefinition replaces the earlier class

    # -- identity ----------------------------------------------------------------------------

    @classmethod
    def get_block_type_slug(cls) -> str:
        return cls._block_type_slug

    @property
    def block_document_name(self) -> str | None:
        """The name this block was saved or loaded as; None for a block never stored."""
        return self._block_document_name

    @property
    def block_document_id(self) -> UUID | None:
        return self._block_document_id

    @classmethod
    def block_schema(cls) -> dict[str, Any]:
        """The JSON schema registered for this type: pydantic's, secret fields marked."""
        schema = cls.model_json_schema()
        _mark_secrets(schema)
        return schema

    # -- storing ---------------------------------------------------------------------------

    def save(self, name: str, overwrite: bool = False) -> UUID:
        """Store this block as `name` (raises `BlockExists` when there is one, unless
        `overwrite`); returns the document's id. Blocks in its fields are stored by
        reference: they must have been saved (or loaded) first."""
        from ..api.block_client import block_client

        slug = self.get_block_type_slug()
        where = f"block '{slug}/{name}'"
        data = {field: encode(getattr(self, field), f"{where}, field '{field}'") for field in type(self).model_fields}
        with block_client() as client:
            client.register_type(slug, self.block_schema(), self._block_schema_version)
            doc = client.save_block(slug, name, data, overwrite=overwrite, type_version=self._block_schema_version)
        self._block_document_name, self._block_document_id = name, doc.id
        return doc.id

    @classmethod
    def load(cls, name: str) -> Self:
        """The block saved as `name`, with the blocks it refers to as they are now; raises
        `BlockNotFound`, `BlockSchemaMismatch` when the document no longer fits this class,
        and `SecretKeyMismatch` when its secrets were saved under another key."""
        return cls._load(name, ())

    @classmethod
    def _load(cls, name: str, seen: tuple[tuple[str, str], ...], read: ReadDocument | None = None) -> Self:
        """`read`: how to fetch a stored document (the service's own store, inside it); a
        client of the service in use without it."""
        slug = cls.get_block_type_slug()
        if read is None:
            from ..api.block_client import block_client

            with block_client() as client:
                doc = client.read_block(slug, name)
        else:
            doc = read(slug, name)
        return cls._from_stored(name, doc.id, doc.data, (*seen, (slug, name)), read)

    @classmethod
    def _from_stored(
        cls, name: str, doc_id: UUID, data: dict[str, Any], seen: tuple[tuple[str, str], ...],
        read: ReadDocument | None = None,
    ) -> Self:
        slug = cls.get_block_type_slug()
        where = f"block '{slug}/{name}'"

        def resolve(ref_slug: str, ref_name: str, at: str) -> Block:
            if (ref_slug, ref_name) in seen:
                raise ValueError(f"{at} refers back to block '{ref_slug}/{ref_name}': blocks cannot refer in a cycle")
            target = block_class(ref_slug)
            if target is None:
                raise BlockSchemaMismatch(
                    f"{at} refers to block '{ref_slug}/{ref_name}', whose type has no class in this "
                    f"process: import the module that defines it",
                    [f"{at}: no class for block type {ref_slug!r}"],
                )
            return target._load(ref_name, seen, read)

        values = {field: decode(item, f"{where}, field '{field}'", resolve) for field, item in data.items()}
        try:
            block = cls.model_validate(values)
        except ValidationError as exc:
            problems = [f"{'.'.join(str(part) for part in err['loc']) or '(document)'}: {err['msg']}" for err in exc.errors()]
            raise BlockSchemaMismatch(
                f"{where} no longer fits the class {cls.__qualname__} "
                f"({len(problems)} problem{'s' if len(problems) != 1 else ''}): " + "; ".join(problems)
                + ". Save it again with the current class, or update its fields",
                problems,
            ) from None
        block._block_document_name, block._block_document_id = name, doc_id
        return block

    def delete(self) -> None:
        """Remove this block's stored document (raises `BlockNotFound` if it is gone)."""
        from ..api.block_client import block_client

        name = self._block_document_name
        if name is None:
            raise ValueError(f"this {type(self).__name__} was never saved: there is nothing to delete")
        with block_client() as client:
            client.delete_block(self.get_block_type_slug(), name)
        self._block_document_name = self._block_document_id = None


def _mark_secrets(schema: Any) -> None:
    """Add `"secret": true` to every write-only (secret) property, however deep."""
    if isinstance(schema, dict):
        if schema.get("writeOnly") is True:
            schema["secret"] = True
        for item in schema.values():
            _mark_secrets(item)
        options = schema.get("anyOf")
        if isinstance(options, list) and options and all(isinstance(o, dict) and o.get("secret") for o in options):
            schema["secret"] = True  # `SecretStr | SecretJSON`: the field itself is secret
    elif isinstance(schema, list):
        for item in schema:
            _mark_secrets(item)
