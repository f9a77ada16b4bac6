"""cache-hash: what the cache key of a large numpy array costs (issue #10).

The key of an N MB float64 array, ``hash_value(a)`` (what an ``INPUTS`` policy does with it),
against ``hashlib.sha256(a.data).hexdigest()`` on the same bytes. One array is alive at a time: both trials share it, and it is freed when
the suite drops them. Needs numpy (a dev dependency); without it both rows are errors.

``cache-hash`` is 100 MB (tiny 1 MB); ``cache-hash-large`` 1 GB (quick 200 MB, tiny 2 MB),
so the quick run, the CI smoke run, never holds a gigabyte. Select both with ``cache-hash``.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import replace
from typing import Any

from benchmarks.engines import require_baseline, require_headwater
from benchmarks.workload import SECONDS, Figure, Trial, Workload

MB = 10**6

# The one array alive at a time, weakly held: the trials of a workload keep it, nothing else.
_array: list[weakref.ref[Any]] = []


def _array_of(megabytes: int) -> Any:
    """A float64 array of ``megabytes`` MB, shared by the trials of one workload."""
    import numpy as np

    held = _array[0]() if _array else None
    if held is not None and held.nbytes == megabytes * MB:
        return held
    _array.clear()
    del held  # let the previous workload's array go before making the next
    array = np.arange(megabytes * MB // 8, dtype=np.float64)  # every page written: no lazy zeros
    _array.append(weakref.ref(array))
    return array


def run_hash(runner: str, n: int) -> Trial:
    require_headwater()
    from headwater.cache import hash_value

    if runner != "hash_value":
        raise ValueError(f"no cache-hash runner named {runner!r}")
    array = _array_of(n)
    return lambda: {"key_chars": float(len(hash_value(array)))}


def baseline_hash(engine: str, n: int) -> Trial:
    require_baseline(engine, ("hashlib",))
    array = _array_of(n)
    return lambda: {"key_chars": float(len(hashlib.sha256(array.data).hexdigest()))}


HASH_FIGURES: tuple[Figure, ...] = (
    Figure("mb_per_s", "MB/s", lambda raw, n: n / raw["seconds"], higher_is_better=True),
    Figure("ms_per_key", "ms/key", lambda raw, n: raw["seconds"] * 1e3),
    SECONDS,
)

HASH = Workload(
    name="cache-hash",
    description="the cache key of an N MB numpy array: hash_value beside hashlib.sha256",
    sizes={"tiny": 1, "quick": 100, "full": 100},
    run=run_hash,
    baseline=baseline_hash,
    figures=HASH_FIGURES,
    runners={"hash_value": "hashlib"},
    size_unit="MB",
    repeats={"quick": 3, "full": 5},
    order=92,
)

WORKLOADS = (
    HASH,
    replace(
        HASH,
        name="cache-hash-large",
        description="the cache key of a large (1 GB) numpy array: hash_value beside hashlib.sha256",
        sizes={"tiny": 2, "quick": 200, "full": 1_000},
        repeats={"quick": 2, "full": 3},
        order=93,
    ),
)
