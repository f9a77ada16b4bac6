"""How workloads reach the engines they compare: headwater (imported lazily) and raw baselines.

headwater is imported on first use, never at suite start, so the suite still runs its
baseline rows while the runtime is missing or broken; a workload then reports
"headwater runtime not importable: <error>" for its headwater rows instead of crashing.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

# Headwater runner names used in `Workload.runners`, mapped to their class in
# `headwater.runners`. Dask and Ray join here when their runners land.
RUNNER_CLASSES: dict[str, str] = {
    "sequential": "SequentialTaskRunner",
    "concurrent": "ConcurrentTaskRunner",
    "ray": "RayTaskRunner",
}


class HeadwaterUnavailable(RuntimeError):
    """The headwater runtime (or the runner asked for) cannot be imported."""


@functools.cache
def _import_error() -> str | None:
    try:
        importlib.import_module("headwater")
        importlib.import_module("headwater.runners")
    except Exception as exc:  # any failure means "not usable yet", reported per row
        return f"{type(exc).__name__}: {exc}"
    return None


def require_headwater() -> None:
    """Raise HeadwaterUnavailable, carrying the import error, unless headwater imports.

    Workloads call this first, then ``from headwater import ...`` inside their ``run``: the
    suite keeps its baseline rows when the runtime is missing, and mypy sees real types.
    """
    error = _import_error()
    if error is not None:
        raise HeadwaterUnavailable(f"headwater runtime not importable: {error}")


def task_runner(name: str) -> Any:
    """A fresh headwater task runner for a runner name such as "concurrent"."""
    class_name = RUNNER_CLASSES.get(name)
    if class_name is None:
        raise HeadwaterUnavailable(f"no headwater runner named {name!r}")
    require_headwater()
    runner_class = getattr(importlib.import_module("headwater.runners"), class_name, None)
    if runner_class is None:
        raise HeadwaterUnavailable(f"headwater.runners has no {class_name} yet")
    return runner_class()


def threadpool() -> ThreadPoolExecutor:
    """The raw baseline engine, with the same default worker count as the concurrent runner."""
    return ThreadPoolExecutor()


@contextmanager
def environment(variables: dict[str, str] | Any) -> Iterator[None]:
    """Set environment variables for the duration of a workload, then restore them."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def require_baseline(engine: str, supported: tuple[str, ...] = ("threadpool",)) -> None:
    """Fail clearly when a workload is asked for a baseline engine it does not implement."""
    if engine not in supported:
        raise ValueError(f"no {engine!r} baseline for this workload (has: {', '.join(supported)})")


def divert_runtime_logs() -> None:
    """Keep headwater's run logs off the terminal while still paying for them.

    Without configuration the runtime adds a console handler and logs every flow run at INFO,
    which would scroll through the progress bar. A handler writing to os.devnull at the same
    level keeps the logging work in the measured time and the terminal readable.
    """
    logger = logging.getLogger("headwater")
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives with the process
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
