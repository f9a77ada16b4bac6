"""The attempt loop shared by task and flow runs: start, call, settle, maybe retry.

An engine says what each step means for its kind of run; this module only sequences them,
once for sync code and once for async code:

    start() -> call() under the timeout -> returned(value) or raised(exc) -> a retry delay
    (sleep, then start again) or None (the run reached its final state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio

from .timeouts import call_with_timeout, call_with_timeout_async


class Attempts(Protocol):
    @property
    def timeout(self) -> float | None: ...

    @property
    def label(self) -> str: ...

    def start(self) -> None: ...

    def call(self) -> Any: ...

    def returned(self, value: Any) -> float | None: ...

    def raised(self, exc: Exception) -> float | None: ...


def run_attempts(engine: Attempts) -> None:
    while True:
        engine.start()
        try:
            value = call_with_timeout(engine.call, engine.timeout, engine.label)
        except Exception as exc:
            delay = engine.raised(exc)
        else:
            delay = engine.returned(value)
        if delay is None:
            return
        if delay > 0:
            time.sleep(delay)


async def run_attempts_async(engine: Attempts, *, settle_in_thread: bool = False) -> None:
    """`settle_in_thread`: `returned`/`raised` may block (a flow waits for its task runs), so
    they run on a worker thread instead of stalling the event loop."""
    settle: Callable[..., Any] = _in_thread if settle_in_thread else _inline
    while True:
        engine.start()
        try:
            value = await call_with_timeout_async(engine.call, engine.timeout, engine.label)
        except Exception as exc:
            delay = await settle(engine.raised, exc)
        else:
            delay = await settle(engine.returned, value)
        if delay is None:
            return
        await anyio.sleep(delay)


async def _inline(fn: Callable[[Any], float | None], arg: Any) -> float | None:
    return fn(arg)


async def _in_thread(fn: Callable[[Any], float | None], arg: Any) -> float | None:
    return await anyio.to_thread.run_sync(fn, arg)
