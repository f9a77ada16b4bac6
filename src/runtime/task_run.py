"""`headwater.runtime.task_run`: the task run executing here, as `prefect.runtime.task_run`.

    from headwater.runtime import task_run

    @task(task_run_name=lambda: f"load-{task_run.parameters['table']}")
    def load(table: str) -> None:
        get_run_logger().info("attempt %d of %s", task_run.run_count, task_run.name)

Each attribute is read when accessed (PEP 562), in the task's own context, on whichever
thread or process runs it. Outside a task (including the body of a subflow that a task
called) they hold Prefect's empty values. Where each answer comes from: `run_metadata.py`.

- `id`: the task run's id, a str (None outside a task)
- `name`, `task_name`: the run's name and its task's (None outside)
- `parameters`: the values the task was called with, upstream results in place of their
  futures, a new dict on each read; inside a `task_run_name` callable, the arguments of the
  run being named, as passed (an upstream is still its future then) ({} outside)
- `tags`: the task's own tags, then those of `tags()` blocks around its call ([] outside)
- `run_count`: the attempt running, from 1 (0 outside)
"""

from collections.abc import Callable as _Callable
from typing import Any as _Any

from . import run_metadata as _metadata
from .run_metadata import module_attributes as _module_attributes

_FIELDS: dict[str, _Callable[[], _Any]] = {
    "id": _metadata.task_run_id,
    "name": _metadata.task_run_name,
    "task_name": _metadata.task_name,
    "parameters": _metadata.task_run_parameters,
    "tags": _metadata.task_run_tags,
    "run_count": _metadata.task_run_count,
}

__all__ = ["id", "name", "parameters", "run_count", "tags", "task_name"]

__getattr__, __dir__ = _module_attributes(__name__, _FIELDS)
