"""Events: anything that happened, reported by any code or tool, and every run's state
changes (`headwater.flow-run.Completed`, ...), in one log the state service keeps.

    from headwater.events import emit_event
    emit_event("sales.table.refreshed", resource={"headwater.resource.id": "warehouse.sales"},
               payload={"rows": 1200})
"""

from .emit import emit_event as emit_event
from .emit import flush_events as flush_events

__all__ = ["emit_event", "flush_events"]
