"""`headwater.task_runners`: where a Prefect user looks for task runners
(`prefect.task_runners`).

An alias of `headwater.runners`: the same classes, `ThreadPoolTaskRunner(max_workers=...)`
(Prefect 3's name for `ConcurrentTaskRunner`) among them. The process pool, Dask and Ray
runners load on first access, through `headwater.runners`, so importing this module imports
none of multiprocessing's pool, dask or ray, and a missing extra fails with the
`RunnerUnavailable` that names it.
"""

from typing import TYPE_CHECKING, Any

from . import runners as _runners
from .runners import ConcurrentTaskRunner as ConcurrentTaskRunner
from .runners import SequentialTaskRunner as SequentialTaskRunner
from .runners import TaskRunner as TaskRunner
from .runners import ThreadPoolTaskRunner as ThreadPoolTaskRunner

if TYPE_CHECKING:
    from .runners._dask import DaskTaskRunner as DaskTaskRunner
    from .runners._process import ProcessPoolTaskRunner as ProcessPoolTaskRunner
    from .runners._ray import RayTaskRunner as RayTaskRunner

_LOADED_ON_ACCESS = frozenset({"DaskTaskRunner", "ProcessPoolTaskRunner", "RayTaskRunner"})

# Dask and Ray stay out of `__all__`, as in `headwater.runners`: a star import would load them.
__all__ = [
    "ConcurrentTaskRunner", "ProcessPoolTaskRunner", "SequentialTaskRunner", "TaskRunner",
    "ThreadPoolTaskRunner",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LOADED_ON_ACCESS:
        return getattr(_runners, name)  # `headwater.runners.__getattr__` loads it
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
