"""Interrupts during a flow: SIGTERM and Ctrl-C end it CRASHED, with what interrupted it.

Python's default SIGTERM kills the process between two bytecodes, with no chance to record
anything. While a top-level flow runs in the main thread, SIGTERM instead raises `Terminated`
there; the flow engine marks the flow CRASHED and its unfinished task runs CANCELLED or
CRASHED, flushes the records, and the exception then ends the process with status 143, the
shell's code for "killed by SIGTERM".

Ctrl-C raises `KeyboardInterrupt` in a sync flow. Under `asyncio.run` (3.11+) it cancels the
main task instead, so an async flow sees only `CancelledError`, the same as any other
cancellation; while a top-level async flow runs in the main thread, `ctrl_c_noted` notes each
SIGINT before the handler in place (asyncio's) runs, and `interruption` then names the
cancellation as the Ctrl-C it was. The run ends CRASHED either way, and the exception
propagates: asyncio.run raises `KeyboardInterrupt`, which ends Python as SIGINT does.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from .cancellation import CancelInterrupt


class Terminated(SystemExit):
    """The process received SIGTERM while a flow was running."""

    def __init__(self) -> None:
        super().__init__(143)

    def __str__(self) -> str:
        return "the process received SIGTERM"


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within this block (main thread only; elsewhere a no-op), SIGTERM raises `Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


CTRL_C = "KeyboardInterrupt (Ctrl-C)"

_noting = 0  # top-level async flows running under `ctrl_c_noted`
_ctrl_c_seen = False
_handler_before: Any = None


def _note_ctrl_c(signum: int, frame: FrameType | None) -> None:
    global _ctrl_c_seen
    _ctrl_c_seen = True
    _handler_before(signum, frame)


@contextmanager
def ctrl_c_noted() -> Iterator[None]:
    """Within this block (main thread only; elsewhere a no-op), a SIGINT is noted, then handled
    as before. Blocks may overlap (async flows gathered in one loop): the first installs the
    note, the last to leave puts the handler before it back, unless something replaced it."""
    global _noting, _ctrl_c_seen, _handler_before
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _noting == 0:
        before = signal.getsignal(signal.SIGINT)
        if not callable(before):  # ignored, or the default that ends the process: no news
            yield
            return
        _handler_before, _ctrl_c_seen = before, False
        signal.signal(signal.SIGINT, _note_ctrl_c)
    _noting += 1
    try:
        yield
    finally:
        _noting -= 1
        if _noting == 0:
            if signal.getsignal(signal.SIGINT) is _note_ctrl_c:
                signal.signal(signal.SIGINT, _handler_before)
            _handler_before, _ctrl_c_seen = None, False


def interruption(exc: BaseException) -> str | None:
    """What interrupted a run that ended with `exc` (a BaseException that is not an
    Exception), named for its state's message: "KeyboardInterrupt (Ctrl-C)", "SIGTERM",
    "SystemExit(2)". None for a cancellation no interrupt caused: the run is CANCELLED."""
    if isinstance(exc, CancelInterrupt):
        return None  # the flow run was cancelled (`cancellation.py`)
    if isinstance(exc, asyncio.CancelledError):
        return CTRL_C if _ctrl_c_seen else None
    if isinstance(exc, KeyboardInterrupt):
        return CTRL_C
    if isinstance(exc, Terminated):
        return "SIGTERM"
    if isinstance(exc, SystemExit):
        return "SystemExit" if exc.code is None else f"SystemExit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
