"""A block's fields as the JSON document the state service stores, and back.

Encoding walks the fields: a secret (`SecretStr`, `SecretBytes`, `SecretJSON`/`SecretDict`)
becomes `{"$secret": token}` (plus `"$json": true` or `"$bytes": true` saying how to read the
plain text back), a field holding another block becomes `{"$ref": {"type": slug, "name":
name}}`, nested models, dicts and lists are walked, and anything else is made JSON by
pydantic. Decoding undoes the secrets (remembering each plain value for masking) and hands
each reference to `resolve`, which loads the referenced block as it is now.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

from ..runtime.secret_masking import remember_secret
from .secret_types import SecretJSON
from .secrets_at_rest import SECRET, decrypt, encrypt

if TYPE_CHECKING:
    from .core import Block

REF = "$ref"
_JSON = "$json"
_BYTES = "$bytes"

#: Loads the block a reference names: (type slug, name, where the reference is) -> the block.
Resolver = Callable[[str, str, str], "Block"]


def encode(value: Any, where: str) -> Any:
    """`value` as stored; `where` names the field in errors (`block 'x/y', field 'url'`)."""
    from .core import Block

    if isinstance(value, Block):
        name = value.block_document_name
        if name is None:
            raise ValueError(
                f"{where} holds a {type(value).__name__} block that was never saved: save it first "
                f"(`.save(name)`) or load a saved one, so it is stored by reference"
            )
        return {REF: {"type": value.get_block_type_slug(), "name": name}}
    if isinstance(value, SecretStr):
        return encrypt(value.get_secret_value())
    if isinstance(value, SecretBytes):
        return {**encrypt(base64.b64encode(value.get_secret_value()).decode("ascii")), _BYTES: True}
    if isinstance(value, SecretJSON):
        return {**encrypt(json.dumps(value.get_secret_value())), _JSON: True}
    if isinstance(value, BaseModel):
        return {name: encode(getattr(value, name), f"{where}.{name}") for name in type(value).model_fields}
    if isinstance(value, dict):
        return {str(key): encode(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return to_jsonable_python(value)


def decode(doc: Any, where: str, resolve: Resolver) -> Any:
    """The stored `doc` with its secrets decrypted and its references loaded, ready for the
    block class to validate."""
    if isinstance(doc, dict):
        if isinstance(doc.get(SECRET), str):
            return _decrypt(doc, where)
        ref = doc.get(REF)
        if len(doc) == 1 and isinstance(ref, dict) and isinstance(ref.get("type"), str) and isinstance(ref.get("name"), str):
            return resolve(ref["type"], ref["name"], where)
        return {key: decode(item, f"{where}[{key!r}]", resolve) for key, item in doc.items()}
    if isinstance(doc, list):
        return [decode(item, f"{where}[{i}]", resolve) for i, item in enumerate(doc)]
    return doc


def _decrypt(doc: dict[str, Any], where: str) -> Any:
    plain = decrypt({SECRET: doc[SECRET]}, where)
    if doc.get(_BYTES):
        return base64.b64decode(plain)
    if doc.get(_JSON):
        value = json.loads(plain)
        _remember_leaves(value)
        return SecretJSON(value)
    return plain


def _remember_leaves(value: Any) -> None:
    """Each text and number inside a secret JSON value, masked from now on in this process."""
    if isinstance(value, dict):
        for item in value.values():
            _remember_leaves(item)
    elif isinstance(value, list):
        for item in value:
            _remember_leaves(item)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        remember_secret(str(value))
