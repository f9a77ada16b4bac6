"""One event loop thread per process for async code called from sync code.

An `async def` task submitted to a thread runner, or called from a sync flow, runs on this
loop; the calling thread blocks until it finishes, so many async tasks share one loop and run
concurrently. The loop starts on first use, so sync-only programs never pay for it.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

T = TypeVar("T")

_lock = threading.Lock()
_portal: BlockingPortal | None = None
_portal_thread: threading.Thread | None = None


def _get_portal() -> BlockingPortal:
    global _portal, _portal_thread
    with _lock:
        if _portal is None:
            manager = start_blocking_portal(backend="asyncio")
            _portal = manager.__enter__()
            _portal_thread = _portal.call(threading.current_thread)
            atexit.register(manager.__exit__, None, None, None)
        return _portal


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run `await fn(*args)` to completion from sync code and return its result."""
    portal = _get_portal()
    if threading.current_thread() is _portal_thread:
        raise RuntimeError(
            "sync code running on headwater's event loop called async code and would block "
            "the loop forever; make the calling function async and await instead"
        )
    return portal.call(fn, *args)
