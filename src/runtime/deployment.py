"""`headwater.runtime.deployment`: the deployment of the run executing here, as
`prefect.runtime.deployment`, for code ported from Prefect that reads it.

Headwater has no deployments yet: every flow run starts because its flow was called, and no
run record has a deployment. So every run reads as Prefect reads a run that no deployment
started: `id`, `flow_run_id`, `name` and `version` are None and `parameters` is {} (a new
dict on each read). Code such as `deployment.parameters.get("env", "dev")` runs unchanged.
"""

from collections.abc import Callable as _Callable
from typing import Any as _Any

from .run_metadata import module_attributes as _module_attributes

_FIELDS: dict[str, _Callable[[], _Any]] = {
    "id": lambda: None,
    "flow_run_id": lambda: None,
    "name": lambda: None,
    "version": lambda: None,
    "parameters": dict,
}

__all__ = ["flow_run_id", "id", "name", "parameters", "version"]

__getattr__, __dir__ = _module_attributes(__name__, _FIELDS)
