"""`headwater.tasks`: where a Prefect user looks for task helpers (`prefect.tasks`).

An alias: `task`, `Task` and `exponential_backoff` as `headwater` exports them, and
`task_input_hash` (for `cache_key_fn=`) from `headwater.cache`.
"""

from .cache import task_input_hash as task_input_hash
from .runtime import Task as Task
from .runtime import exponential_backoff as exponential_backoff
from .runtime import task as task

__all__ = ["Task", "exponential_backoff", "task", "task_input_hash"]
