"""One local Ray for the whole test session: starting Ray costs seconds, so the Ray tests share
an instance, and each `RayTaskRunner` finds Ray initialised and neither starts nor stops it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Small enough for a shared two-core machine: two CPUs, a 200 MB object store, no dashboard.
RAY_INIT = {
    "num_cpus": 2,
    "include_dashboard": False,
    "object_store_memory": 200 * 1024 * 1024,
    "log_to_driver": False,
    # workers import test modules by name (tasks defined in them pickle by reference)
    "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}},
}


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    ray.init(**RAY_INIT)
    try:
        yield
    finally:
        ray.shutdown()
