"""`check_documents()`: every stored block document validated against its class here, so
`headwater block check` finds a document that no longer loads before a run does.

A document is loaded as `Cls.load` would (its references and secrets too); each failure
becomes one `Problem`: a type with no class imported in this process, a document that no
longer fits its class (one detail per field), a secret saved under another key, a reference
to a block that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BlockSchemaMismatch, SecretKeyError, SecretKeyMismatch
from .core import block_class


@dataclass(frozen=True, slots=True)
class Problem:
    """One stored document that would not load: `message` says why, `details` one line per
    field when it no longer fits its class."""

    type_slug: str
    name: str
    message: str
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.type_slug}/{self.name}: {self.message}"


def check_documents() -> list[Problem]:
    """Every stored block document that would not load in this process, by type and name."""
    from ..api.block_client import block_client
    from ..api.errors import BlockNotFound

    with block_client() as client:
        documents = client.list_blocks()
    problems: list[Problem] = []
    for doc in sorted(documents, key=lambda d: (d.type_slug, d.name)):
        cls = block_class(doc.type_slug)
        if cls is None:
            problems.append(Problem(doc.type_slug, doc.name, (
                f"no class for block type {doc.type_slug!r} is imported in this process; import "
                "the module that defines it (or delete the block)"
            )))  # fmt: skip
            continue
        try:
            cls._from_stored(doc.name, doc.id, doc.data, ((doc.type_slug, doc.name),))
        except BlockSchemaMismatch as exc:
            problems.append(Problem(doc.type_slug, doc.name, str(exc), tuple(exc.problems)))
        except (SecretKeyMismatch, SecretKeyError, BlockNotFound, ValueError) as exc:
            problems.append(Problem(doc.type_slug, doc.name, f"{type(exc).__name__}: {exc}"))
    return problems
