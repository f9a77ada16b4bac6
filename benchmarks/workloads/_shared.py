"""Plain functions the workloads run as tasks; module-level so every runner can pickle them."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

T = TypeVar("T")


def noop(x: T | None = None) -> T | None:
    """The cheapest possible task body: what remains is the runtime's own cost."""
    return x


def count(items: list[Any]) -> int:
    """A fan-in body: touches the collected inputs without doing real work."""
    return len(items)


def count_all(*items: Any) -> int:
    """The fan-in body for raw Ray: it resolves only ``ObjectRef``s passed as whole arguments."""
    return len(items)


def make_small(i: int) -> dict[str, Any]:
    """A small object, about the size of a typical row or parameter set."""
    return {"index": i, "name": f"item-{i}", "tags": ["a", "b"], "value": i * 0.5}


@functools.cache
def make_large(mebibytes: int) -> bytearray:
    """A large buffer (no numpy), allocated once per process and handed out again after that.

    Allocating and zeroing 100 MiB costs tens of milliseconds, and how much depends on which
    thread allocates and what the allocator reuses, noise that would swamp what `data-large`
    is after: what the runtime does with a big object on its way from one task to the next.
    The warm-up call allocates it, untimed; in a worker process each worker does so once.
    """
    return bytearray(mebibytes * 2**20)


def size_of(obj: bytes | bytearray | dict[str, Any]) -> int:
    """Consumes an object received from the previous task."""
    return len(obj)


def spin(n: int) -> int:
    """A small CPU-bound body (about a millisecond for n = 20,000): work threads would
    serialise on the GIL, the reason to run tasks in processes."""
    total = 0
    for i in range(n):
        total += i * i
    return total
