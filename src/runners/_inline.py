"""`SequentialTaskRunner`: every task run happens in the submitting thread, one at a time.

The simplest runner and a debugging aid: tracebacks are plain, breakpoints work, and order is
submission order. `submit` returns an already finished future.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from .base import RunnerFuture, TaskCall, TaskRunner, run_call


class SequentialTaskRunner(TaskRunner):
    """Runs each task run to completion inside `submit`."""

    name = "sequential"

    def submit(self, call: TaskCall) -> RunnerFuture:
        future: Any = Future()
        future.run_id = call.run_id
        future.set_running_or_notify_cancel()
        try:
            result = run_call(call, tuple(f.result() for f in call.upstream))
        except BaseException as exc:  # handed to the future, never dropped
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future  # type: ignore[no-any-return]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to release: no workers were created."""

    def duplicate(self) -> SequentialTaskRunner:
        return SequentialTaskRunner()
