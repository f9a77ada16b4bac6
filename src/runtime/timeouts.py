"""Running a call under `timeout_seconds`, and what that can and cannot interrupt.

Async code is cancelled properly (anyio's `fail_after`): the run stops at its next await.

Sync code cannot be stopped from outside in Python. With a timeout, the call runs in a helper
thread while the caller waits on a deadline. At the deadline the run is marked `TimedOut` on
time and its worker is released, and `TimeoutError` is raised *inside* the helper thread
(`PyThreadState_SetAsyncExc`), which stops pure-Python code at its next bytecode. A call
blocked in C (`time.sleep`, a socket read, a long numpy operation) is not interrupted: it runs
on in the background until that C call returns, and its result is discarded.
Without a timeout, sync calls run directly in the calling thread, with no helper thread.

The helper runs on behalf of the caller, often a pool worker, so it takes over the caller's
blocking hook: a timed task that waits on other runs still lends its worker, as an untimed one
does, instead of starving a small pool and timing out.
"""

from __future__ import annotations

import contextvars
import ctypes
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from ..errors import RunTimedOut
from ..runners.base import current_blocking_hook, set_blocking_hook

T = TypeVar("T")


class _Outcome:
    __slots__ = ("value", "error", "done")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


def _interrupt(thread: threading.Thread) -> None:
    """Raise `TimeoutError` in `thread` at its next Python bytecode."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(TimeoutError)
        )


def call_with_timeout(fn: Callable[[], T], timeout: float | None, what: str) -> T:
    """`fn()`, raising `RunTimedOut` if it takes longer than `timeout` seconds."""
    if timeout is None:
        return fn()
    outcome = _Outcome()
    context = contextvars.copy_context()
    hook = current_blocking_hook()

    def target() -> None:
        set_blocking_hook(hook)  # the caller's worker is the one to lend while this waits
        try:
            outcome.value = context.run(fn)
        except BaseException as exc:  # carried back to the waiting thread
            outcome.error = exc
        finally:
            outcome.done.set()

    helper = threading.Thread(target=target, name=f"headwater-timeout-{what}", daemon=True)
    helper.start()
    if not outcome.done.wait(timeout):
        _interrupt(helper)
        raise RunTimedOut(f"{what} exceeded its timeout of {timeout:g} seconds")
    if outcome.error is not None:
        raise outcome.error
    return outcome.value  # type: ignore[no-any-return]


async def call_with_timeout_async(
    fn: Callable[[], Awaitable[T]], timeout: float | None, what: str
) -> T:
    if timeout is None:
        return await fn()
    try:
        with anyio.fail_after(timeout):
            return await fn()
    except TimeoutError:
        raise RunTimedOut(f"{what} exceeded its timeout of {timeout:g} seconds") from None
