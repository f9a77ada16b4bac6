"""Text from runs, made safe to print, and the console every verb prints tables through."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

#: The width a console gets when nobody sees it (a pipe, a file): wider than any line we print.
_UNBOUNDED = 1_000_000


def inert(value: str | None, style: str = "") -> Text:
    """`value` as plain text: no markup, and every control or formatting character (ESC,
    BEL, CR, a bidi override) shown escaped (`\\x1b`) instead of reaching the terminal."""
    text = value or ""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return Text(text, style=style)


class _StdoutConsole(Console):
    """A console that leaves a closed pipe to `_main.main`, so every verb ends alike there
    (rich's own answer exits with status 1 on the spot)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more to write: the reader is gone
        raise BrokenPipeError


def console(**options: Any) -> Console:
    """A rich console on stdout. On a terminal, rich fits tables to its width. Anywhere else
    rich would assume 80 columns and cut names (`swift-oce…`) or wrap dates over two lines for
    a width nobody sees; there nothing is cut or wrapped, so ids, names and times stay whole,
    one row a line, for `grep`, `awk` and `less -S`."""
    out = _StdoutConsole(**options)
    if out.is_terminal:
        return out
    return _StdoutConsole(width=_UNBOUNDED, **options)
