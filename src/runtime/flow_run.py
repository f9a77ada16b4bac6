"""`headwater.runtime.flow_run`: the flow run executing here, as `prefect.runtime.flow_run`.

    from headwater.runtime import flow_run

    @task
    def report() -> str:
        return f"{flow_run.flow_name}/{flow_run.name} {flow_run.parameters}"

Each attribute is read when accessed (PEP 562), so it names the run of whichever thread asks:
a flow's body, its tasks on worker threads or other processes, a subflow. Outside any run
they hold Prefect's empty values. Where each answer comes from: `run_metadata.py`.

- `id`: the flow run's id, a str (None outside a run)
- `name`, `flow_name`: the run's name and its flow's (None outside)
- `parameters`: the run's parameters, a new dict on each read ({} outside)
- `tags`: the run's tags, from `tags()` blocks around its call ([] outside)
- `parent_flow_run_id`: the flow run that called this one as a subflow, a str, or None
- `scheduled_start_time`: an aware UTC datetime; a headwater flow run is meant to start when
  it is called, so this is when it was created (now, outside a run)
"""

from collections.abc import Callable as _Callable
from typing import Any as _Any

from . import run_metadata as _metadata
from .run_metadata import module_attributes as _module_attributes

_FIELDS: dict[str, _Callable[[], _Any]] = {
    "id": _metadata.flow_run_id,
    "name": _metadata.flow_run_name,
    "flow_name": _metadata.flow_name,
    "parameters": _metadata.flow_run_parameters,
    "tags": _metadata.flow_run_tags,
    "parent_flow_run_id": _metadata.parent_flow_run_id,
    "scheduled_start_time": _metadata.scheduled_start_time,
}

__all__ = ["flow_name", "id", "name", "parameters", "parent_flow_run_id", "scheduled_start_time", "tags"]

__getattr__, __dir__ = _module_attributes(__name__, _FIELDS)
