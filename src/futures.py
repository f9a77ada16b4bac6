"""`headwater.futures`: where a Prefect user looks for futures (`prefect.futures`).

An alias: the same objects as `headwater`'s own, re-exported.
"""

from .runtime import FlowFuture as FlowFuture
from .runtime import FutureList as FutureList
from .runtime import TaskFuture as TaskFuture
from .runtime import as_completed as as_completed
from .runtime import wait as wait

__all__ = ["FlowFuture", "FutureList", "TaskFuture", "as_completed", "wait"]
