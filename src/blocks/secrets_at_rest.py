"""Secret fields as they are stored: `{"$secret": <Fernet token>}`.

`encrypt` turns a plain value into that document with the key in use (`keys.py`); `decrypt`
turns it back, and remembers the plain value so it is masked in run logs and recorded
parameters of this process (`headwater.runtime.secret_masking`). Fernet authenticates what it
encrypts, so a token made under another key (or changed since) is refused, never decrypted
into garbage: `SecretKeyMismatch`, naming the block and field and the key in use.

The state service only ever sees the token.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken

from ..errors import SecretKeyMismatch
from ..runtime.secret_masking import remember_secret
from .keys import ENV_KEY, load_key

SECRET = "$secret"


def encrypt(plaintext: str) -> dict[str, str]:
    """`plaintext` encrypted with the key in use, as a stored secret document."""
    token = load_key().fernet.encrypt(plaintext.encode("utf-8"))
    return {SECRET: token.decode("ascii")}


def is_encrypted(doc: Any) -> bool:
    return isinstance(doc, dict) and len(doc) == 1 and isinstance(doc.get(SECRET), str)


def decrypt(doc: Any, where: str) -> str:
    """The plain value of the stored secret `doc`; `where` names it in errors
    (`block 'secret/db-password', field 'value'`)."""
    if not is_encrypted(doc):
        raise SecretKeyMismatch(f"{where}: expected an encrypted secret, found {type(doc).__name__}", where)
    key = load_key()
    try:
        plain = key.fernet.decrypt(doc[SECRET].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError) as exc:
        used = ENV_KEY if key.source == ENV_KEY else f"the key file {key.source}"
        raise SecretKeyMismatch(
            f"{where} does not decrypt with the key in use ({used}): it was saved with another "
            f"key. Use the key it was saved with (set {ENV_KEY}, or HEADWATER_SECRET_KEY_FILE to "
            "that key's file), or save the block again with its value",
            where,
        ) from exc
    remember_secret(plain)
    return plain
