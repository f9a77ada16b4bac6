"""Pickling a call for a runner whose workers live in other processes (pool, Dask, Ray).

Kept apart from `base.py` so `import headwater` does not pay for cloudpickle; only the runners
that ship calls import it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import cloudpickle

from ..errors import ShippingError


def pickled_call(parts: Any, run_id: UUID, destination: str) -> bytes:
    """`parts` (a call's function, payload and whatever else goes) pickled with cloudpickle, or
    `ShippingError` naming the run, where it was going and what did not pickle."""
    try:
        return cloudpickle.dumps(parts)  # type: ignore[no-any-return]
    except Exception as exc:
        raise ShippingError(
            f"task run {run_id} cannot be sent to {destination}: its function or an argument "
            f"does not pickle ({type(exc).__name__}: {exc}); pass picklable arguments, create "
            "the object inside the task, or use a thread runner for this task"
        ) from exc
