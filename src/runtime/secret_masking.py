"""Masking secret values before they are stored: run logs and recorded run parameters.

Every secret value this process decrypted (a block's secret field, loaded by
`headwater.blocks`) is remembered here (`remember_secret`); `mask(text)` replaces each one in
`text` with `********`. It lives in the runtime, not in `blocks`, because the two places
that call it are the runtime's: the one place run-log records pass on their way to the state
service (`log_capture.RunLogHandler.emit`) and the recording of a run's parameters
(`recording.json_safe`). The runtime may not import `blocks`; `blocks` imports this.

The log path is hot: until a secret was loaded, `mask` is one check of a module-level tuple
(empty, so false) and returns its argument. Values shorter than `MIN_LENGTH` are not
remembered: masking every "a" or "no" in every line would hide the log, not the secret.
"""

from __future__ import annotations

import threading

MASK = "********"
#: Shorter secret values are not masked (see the module docstring).
MIN_LENGTH = 4

_lock = threading.Lock()
_values: set[str] = set()
# Longest first, so a secret that contains another is masked whole. Replaced (never mutated)
# under the lock, so `mask` reads it without one.
_ordered: tuple[str, ...] = ()


def remember_secret(value: str) -> None:
    """Mask `value` in every run log line and recorded parameter from now on, in this process."""
    global _ordered
    if not isinstance(value, str) or len(value) < MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        _ordered = tuple(sorted(_values, key=len, reverse=True))


def mask(text: str) -> str:
    """`text` with every remembered secret value replaced by `MASK`."""
    ordered = _ordered
    if not ordered:
        return text
    for value in ordered:
        if value in text:
            text = text.replace(value, MASK)
    return text


def masking_active() -> bool:
    """Whether any secret was remembered in this process."""
    return bool(_ordered)


def forget_secrets() -> None:
    """Forget every remembered value (for tests, which load secrets of their own)."""
    global _ordered
    with _lock:
        _values.clear()
        _ordered = ()
