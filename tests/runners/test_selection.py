"""Choosing runners by name, and the errors for backends whose extras are missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from headwater.runners import ConcurrentTaskRunner, SequentialTaskRunner, get_runner


def test_get_runner_by_name() -> None:
    assert isinstance(get_runner("sequential"), SequentialTaskRunner)
    runner = get_runner("threads", max_workers=3)
    assert isinstance(runner, ConcurrentTaskRunner) and runner.max_workers == 3
    with pytest.raises(ValueError, match="unknown task runner 'spark'"):
        get_runner("spark")


@pytest.mark.parametrize(("name", "extra"), [("DaskTaskRunner", "dask"), ("RayTaskRunner", "ray")])
def test_a_missing_backend_names_the_extra_to_install(name: str, extra: str) -> None:
    # Block the backend's packages in a fresh interpreter, whatever is installed here.
    code = (
        "import sys\n"
        "for mod in ('dask', 'distributed', 'ray'): sys.modules[mod] = None\n"
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n in ('dask', 'distributed', 'ray') else real(n, *a)\n"
        "try:\n"
        f"    from headwater.runners import {name}\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("RunnerUnavailable")
    assert f"pip install 'headwater[{extra}]'" in out.stdout


def test_max_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrentTaskRunner(max_workers=0)
