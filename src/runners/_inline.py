"""`SequentialTaskRunner`: every task run happens in the submitting thread, one at a time.

The simplest runner and a debugging aid: tracebacks are plain, breakpoints work, and order is
submission order. `submit` returns an already finished future.
"""

from __future__ import annotations

from .base import FinishedFuture, RunnerFuture, TaskCall, TaskRunner, resolve_upstream


class SequentialTaskRunner(TaskRunner):
    """Runs each task run to completion inside `submit`."""

    name = "sequential"
    runs_inline = True

    def submit(self, call: TaskCall) -> RunnerFuture:
        try:
            upstream = resolve_upstream(call.upstream, FinishedFuture) if call.upstream else ()
            result = call.entrypoint(call.payload, upstream)
        except BaseException as exc:  # handed to the future, never dropped
            return FinishedFuture(call.run_id, error=exc)
        return FinishedFuture(call.run_id, result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to release: no workers were created."""

    def duplicate(self) -> SequentialTaskRunner:
        return SequentialTaskRunner()
