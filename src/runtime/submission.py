"""Where a `.submit()` goes: the current flow run's scheduler, or, outside any flow, a
process-wide background scheduler on threads (as Prefect 3 lets tasks run without a flow).
"""

from __future__ import annotations

import atexit
import threading

from ..runners import ConcurrentTaskRunner
from .context import flow_run_var
from .engine import run_task
from .scheduler import TaskScheduler

_lock = threading.Lock()
_background: TaskScheduler | None = None


def current_scheduler() -> TaskScheduler:
    flow_ctx = flow_run_var.get()
    if flow_ctx is not None:
        return flow_ctx.scheduler
    return _background_scheduler()


def _background_scheduler() -> TaskScheduler:
    global _background
    if _background is None:
        with _lock:
            if _background is None:
                runner = ConcurrentTaskRunner()
                runner.start()
                _background = TaskScheduler(runner, run_task)
                # Runs submitted outside a flow finish before the interpreter exits.
                atexit.register(_background.wait_all)
    return _background
