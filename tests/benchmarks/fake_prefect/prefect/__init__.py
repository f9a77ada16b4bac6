"""A stand-in for Prefect's public API, just enough to run `benchmarks/peers/prefect_peer.py`.

It lets the smoke test exercise the peer protocol (spec in, JSON out, a column in the table)
without installing Prefect. It measures nothing about Prefect.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__version__ = "0.0.0-fake"
_pool = ThreadPoolExecutor()


class PrefectFuture:
    def __init__(self, future: Any) -> None:
        self._future = future

    def result(self) -> Any:
        return self._future.result()

    def wait(self) -> None:
        self._future.result()


class PrefectFutureList(list):  # type: ignore[type-arg]
    def result(self) -> list[Any]:
        return [f.result() for f in self]


def _resolve(value: Any) -> Any:
    if isinstance(value, PrefectFuture):
        return value.result()
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


class Task:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def submit(self, *args: Any) -> PrefectFuture:
        return PrefectFuture(_pool.submit(lambda: self.fn(*[_resolve(a) for a in args])))

    def map(self, values: Any) -> PrefectFutureList:
        return PrefectFutureList(self.submit(v) for v in values)


def task(fn: Callable[..., Any]) -> Task:
    return Task(fn)


def flow(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        return fn(*args)

    return run
