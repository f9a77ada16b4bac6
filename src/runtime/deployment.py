"""`headwater.runtime.deployment`: the deployment of the run executing here, as
`prefect.runtime.deployment`, for code ported from Prefect that reads it.

In a process a worker (or `serve`) started for a deployment's run (`adopted_run.py`), inside
that run: the deployment's `id` (text), `name`, `version`, its default `parameters` and
`flow_run_id`, the run it started. Anywhere else, as Prefect reads a run no deployment
started: `id`, `flow_run_id`, `name` and `version` are None and `parameters` is {} (a new
dict on each read), so `deployment.parameters.get("env", "dev")` runs unchanged.
"""

from collections.abc import Callable as _Callable
from typing import Any as _Any

from .adopted_run import deployment_here as _deployment_here
from .run_metadata import flow_run_id as _flow_run_id
from .run_metadata import module_attributes as _module_attributes


def _here() -> _Any:
    return _deployment_here() if _flow_run_id() is not None else None


def _field(name: str) -> _Callable[[], _Any]:
    return lambda: None if (d := _here()) is None else getattr(d, name)


_FIELDS: dict[str, _Callable[[], _Any]] = {
    "id": lambda: None if (d := _here()) is None else str(d.id),
    "flow_run_id": lambda: _flow_run_id() if _here() is not None else None,
    "name": _field("name"),
    "version": _field("version"),
    "parameters": lambda: {} if (d := _here()) is None else dict(d.parameters),
}

__all__ = ["flow_run_id", "id", "name", "parameters", "version"]

__getattr__, __dir__ = _module_attributes(__name__, _FIELDS)
