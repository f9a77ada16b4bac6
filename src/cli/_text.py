"""Text from runs, made safe to print: shared by the `runs` verbs and `runs logs`."""

from __future__ import annotations

from rich.text import Text


def inert(value: str | None, style: str = "") -> Text:
    """`value` as plain text: no markup, and every control or formatting character (ESC,
    BEL, CR, a bidi override) shown escaped (`\\x1b`) instead of reaching the terminal."""
    text = value or ""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return Text(text, style=style)
