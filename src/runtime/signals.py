"""SIGTERM during a flow: end it like Ctrl-C, so its runs are marked, not left "Running".

Python's default SIGTERM kills the process between two bytecodes, with no chance to record
anything. While a top-level flow runs in the main thread, SIGTERM instead raises `Terminated`
there; the flow engine marks the flow CRASHED and its unfinished task runs CANCELLED or
CRASHED, flushes the records, and the exception then ends the process with status 143, the
shell's code for "killed by SIGTERM".
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


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
