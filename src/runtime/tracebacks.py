"""Headwater's own frames folded out of the tracebacks a user reads.

A task's failure passes through a dozen frames of ours (the attempt loop, timeouts, state
handling, the flow's engine) on its way back to the code that called the flow; they say
nothing about the user's bug and bury the three frames that do. As pytest and rich do, the
frames whose file is inside the headwater package are dropped:

- `fold_headwater_frames(exc)`: where a failure leaves headwater for the caller's code
  (`Flow.__call__`, `Task.__call__`, a future's `result()`), the exception's traceback, and
  those of the exceptions chained to it, are rebuilt without our frames, and a note says how
  many were hidden. The caller re-raises with a bare `raise`, which adds no frame of its own,
  so Python's print of an uncaught failure shows the user's frames only.
- `folded_text(exc)`: the console's rendering of a logged exception, folded the same way
  without changing the exception.
- `raised_at(exc)`: where the user's code raised it, for a one-line summary.

Under `HEADWATER_LOG_LEVEL=DEBUG` (the `headwater` logger enabled for DEBUG) nothing is
folded. Only what is shown changes: the exception's type, message, `__cause__` and
`__context__` stay as they were, and a run's stored logs keep the full traceback
(`log_capture.py` formats the record when it is written, before any folding).
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TypeVar

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
Link = TypeVar("Link")
_NOTE = "[{count} headwater frame{s} hidden; HEADWATER_LOG_LEVEL=DEBUG shows them]"
_NOTE_PATTERN = re.compile(r"\[(\d+) headwater frames? hidden; HEADWATER_LOG_LEVEL=DEBUG shows them\]")


def is_headwater_file(filename: str) -> bool:
    """True for a file inside the installed headwater package."""
    return filename.startswith(_PACKAGE_DIR)


def folding() -> bool:
    """False under `HEADWATER_LOG_LEVEL=DEBUG`: then every frame is shown."""
    return not logging.getLogger("headwater").isEnabledFor(logging.DEBUG)


def fold_headwater_frames(exc: BaseException) -> None:
    """Drop headwater's frames from the tracebacks of `exc` and of every exception chained to
    it, and note on `exc` how many were hidden (counting those an earlier fold hid). Call it
    in an `except` block that then re-raises with a bare `raise`."""
    if not folding():
        return
    hidden = 0
    for link in _chain(exc):
        kept, dropped = _without_headwater(link.__traceback__)
        if dropped:
            link.__traceback__ = kept
            hidden += dropped
    if hidden:
        _note_hidden(exc, hidden)


def folded_text(exc: BaseException) -> str:
    """`exc` formatted as Python prints it, headwater's frames left out and a note saying how
    many; `exc` itself is not changed."""
    formatted = traceback.TracebackException.from_exception(exc)
    hidden = 0
    for link in _formatted_chain(formatted):
        kept = [frame for frame in link.stack if not is_headwater_file(frame.filename)]
        hidden += len(link.stack) - len(kept)
        link.stack = traceback.StackSummary.from_list(kept)
    text = "".join(formatted.format()).rstrip("\n")
    return f"{text}\n{_note(hidden)}" if hidden else text


def raised_at(exc: BaseException) -> str | None:
    """Where `exc` was raised outside headwater ("file:line in function"): the innermost frame
    of its traceback that is not ours; None when every frame is ours."""
    where = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not is_headwater_file(code.co_filename):
            where = f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}"
        tb = tb.tb_next
    return where


def _without_headwater(tb: TracebackType | None) -> tuple[TracebackType | None, int]:
    """The traceback rebuilt from its entries outside headwater, and how many were dropped."""
    entries: list[TracebackType] = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    kept = [entry for entry in entries if not is_headwater_file(entry.tb_frame.f_code.co_filename)]
    if len(kept) == len(entries):
        return (entries[0] if entries else None), 0
    rebuilt: TracebackType | None = None
    for entry in reversed(kept):
        rebuilt = TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt, len(entries) - len(kept)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, its causes and contexts, and the members of exception groups, each once."""
    return _each_once(exc, lambda link: [
        link.__cause__, link.__context__,
        *(link.exceptions if isinstance(link, BaseExceptionGroup) else ()),
    ])


def _formatted_chain(exc: traceback.TracebackException) -> Iterator[traceback.TracebackException]:
    """The same walk over a `TracebackException` (the console's rendering)."""
    return _each_once(exc, lambda link: [link.__cause__, link.__context__, *(link.exceptions or ())])


def _each_once(start: Link, linked: Callable[[Link], list[Link | None]]) -> Iterator[Link]:
    seen: set[int] = set()
    pending: list[Link | None] = [start]
    while pending:
        link = pending.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        pending += linked(link)


def _note_hidden(exc: BaseException, count: int) -> None:
    """One note on `exc` with the frames hidden so far: an earlier fold's note is replaced."""
    notes = getattr(exc, "__notes__", [])
    if not isinstance(notes, list):  # set by hand to something add_note refuses
        return
    for index, note in enumerate(notes):
        earlier = _NOTE_PATTERN.fullmatch(note) if isinstance(note, str) else None
        if earlier is not None:
            notes[index] = _note(count + int(earlier[1]))
            return
    exc.add_note(_note(count))


def _note(count: int) -> str:
    return _NOTE.format(count=count, s="" if count == 1 else "s")
