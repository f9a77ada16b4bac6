"""`headwater.context`: where a Prefect user looks for the run context (`prefect.context`).

An alias: `get_run_context()` (the task run's context inside a task, with `.task_run`, else
the flow run's, with `.flow_run`) and the `tags()` block, as `headwater` exports them.
"""

from .runtime import get_run_context as get_run_context
from .runtime import tags as tags

__all__ = ["get_run_context", "tags"]
