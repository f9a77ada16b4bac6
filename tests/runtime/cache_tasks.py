"""Cached tasks shared by the caching tests and the processes they start.

Each task counts its executions in a file (`side_effects.count`) named by its first argument,
so one test's calls never share a key with another's, and two processes can count together.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from headwater import flow, task
from headwater.cache import INPUTS, TASK_SOURCE

from ..runners.side_effects import Traced, count

POLICY = TASK_SOURCE + INPUTS


@task(cache_policy=POLICY)
def produce(log: str, n: int) -> Traced:
    """A value that writes down every process that unpickles it."""
    count(Path(log + ".runs"))
    return Traced(log + ".loads", list(range(n)))


@task(cache_policy=POLICY)
def grow(log: str, upstream: Traced) -> Traced:
    count(Path(log + ".grow"))
    return Traced(log + ".loads", [*upstream.value, len(upstream.value)])


@task(cache_policy=POLICY.configure(isolation_level="SERIALIZABLE", lock_lease_seconds=2.0))
def slow_once(log: str, seconds: float) -> int:
    count(Path(log))
    time.sleep(seconds)
    return 42


@task(cache_policy=POLICY)
def slow_racing(log: str, seconds: float) -> list[int]:
    count(Path(log))
    time.sleep(seconds)
    return list(range(10_000))


@flow
def chain(log: str, n: int) -> list[int]:
    return grow(log, grow.submit(log, produce.submit(log, n))).value  # type: ignore[no-any-return]


@flow
def compute_once(log: str, seconds: float, single_flight: bool) -> object:
    fn = slow_once if single_flight else slow_racing
    return fn(log, seconds)


if __name__ == "__main__":  # python -m tests.runtime.cache_tasks LOG SECONDS single|racing
    value = compute_once(sys.argv[1], float(sys.argv[2]), sys.argv[3] == "single")
    print(value if isinstance(value, int) else len(value))  # type: ignore[arg-type]
