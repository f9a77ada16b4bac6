"""Task runners: where task runs execute. One interface (`base.TaskRunner`), several backends.

The in-process runners import eagerly. The others load lazily on first access, as anyio loads
its backends, so `import headwater` never pays for them: the process pool (multiprocessing and
cloudpickle cost a sixth of the package's import time), and the backends with optional
dependencies (Dask, Ray), whose absence fails with an error that names the extra to install.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from ..errors import RunnerUnavailable
from ._inline import SequentialTaskRunner as SequentialTaskRunner
from ._thread import ConcurrentTaskRunner as ConcurrentTaskRunner
from .base import RunnerFuture as RunnerFuture
from .base import TaskCall as TaskCall
from .base import TaskRunner as TaskRunner

if TYPE_CHECKING:
    from ._process import ProcessPoolTaskRunner as ProcessPoolTaskRunner
    from ._ray import RayTaskRunner as RayTaskRunner
    from ._ray import remote_options as remote_options

ThreadPoolTaskRunner = ConcurrentTaskRunner  # the name Prefect 3 users reach for

# class name -> module in this package, for runners that need nothing optional
_LAZY: dict[str, str] = {"ProcessPoolTaskRunner": "._process"}

# class name -> (module in this package, distributions it needs, extra that installs them)
_OPTIONAL: dict[str, tuple[str, tuple[str, ...], str]] = {
    "DaskTaskRunner": ("._dask", ("dask", "distributed"), "dask"),
    "get_dask_client": ("._dask", ("dask", "distributed"), "dask"),
    "RayTaskRunner": ("._ray", ("ray",), "ray"),
    "remote_options": ("._ray", ("ray",), "ray"),  # per-call Ray options, see `_ray.py`
}

_BUILTIN: dict[str, type[TaskRunner]] = {
    "sequential": SequentialTaskRunner,
    "concurrent": ConcurrentTaskRunner,
    "threads": ConcurrentTaskRunner,
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    if name not in _OPTIONAL:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, needs, extra = _OPTIONAL[name]
    missing = [dist for dist in needs if find_spec(dist) is None]
    if missing:
        raise RunnerUnavailable(
            f"{name} needs {', '.join(missing)}, which is not installed; "
            f"install it with: pip install 'headwater[{extra}]'"
        )
    try:
        module = import_module(module_name, __name__)
    except ModuleNotFoundError as exc:
        # Installed, but something it imports is not (a partial or broken install).
        raise RunnerUnavailable(
            f"{name} could not be imported ({exc}); reinstall it with: "
            f"pip install --force-reinstall 'headwater[{extra}]'"
        ) from exc
    return getattr(module, name)


def get_runner(name: str, **options: Any) -> TaskRunner:
    """A runner by name: 'sequential', 'concurrent' (or 'threads'), 'processes', 'dask', 'ray'."""
    if name in _BUILTIN:
        return _BUILTIN[name](**options)
    lazy = {"processes": "ProcessPoolTaskRunner", "dask": "DaskTaskRunner", "ray": "RayTaskRunner"}.get(name)
    if lazy is None:
        known = sorted([*_BUILTIN, "processes", "dask", "ray"])
        raise ValueError(f"unknown task runner {name!r}; choose one of {known}")
    runner_class: type[TaskRunner] = __getattr__(lazy)
    return runner_class(**options)


__all__ = [
    "ConcurrentTaskRunner",
    "ProcessPoolTaskRunner",
    "RunnerFuture",
    "SequentialTaskRunner",
    "TaskCall",
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "get_runner",
]
