"""Calling state hooks (`on_completion`, `on_failure`, ...) for task and flow runs alike.

A hook receives `(task_or_flow, run, state)`, as in Prefect. A hook that raises is logged with
its traceback and changes nothing: the run's outcome is already decided when hooks run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .logs import run_extra
from .runs import Run


def call_hooks(hooks: Sequence[Callable[..., Any]], owner: Any, run: Run, logger: logging.Logger) -> None:
    for hook in hooks:
        try:
            hook(owner, run, run.state)
        except Exception:  # a broken hook must not change the run's outcome; it is logged
            logger.exception(
                "Hook %r raised; the run's state is unchanged", getattr(hook, "__name__", hook),
                extra=run_extra(),
            )
