"""What a lost attempt means for its task run: another attempt, or the run's final state.

An attempt is lost when its runner cannot return the engine's outcome: the call could not be
sent, its worker died under it, or a value it needed was gone. The engine never got to decide
what that means, so the flow decides it here, with the budget the engine uses for the task's
own failures (`Task.retries`, or `Task.crash_retries` for lost workers). Pure: the scheduler
counts the attempt on the flow's record, asks `judge_lost_attempt`, and feeds the verdict to
the lifecycle as `AttemptLost`.

    the runner raised               the attempt          the run
    WorkerLost (its worker died)    counted: run_count   retried while the budget lasts, on a
                                    and lost_attempts    live worker; then CRASHED, or FAILED
                                                         when all of 2+ attempts died
    UpstreamLost                    not counted          CRASHED, naming the lost upstream;
                                                         never retried (the value is gone)
    ShippingError                   not counted          FAILED, naming what does not pickle;
                                                         never retried (it never will)
    anything else                   not counted          CRASHED, naming the error

A task that kills every worker it lands on (a poison task) thus ends FAILED after its budget,
not CRASHED: once every attempt died, the task is the likely cause, not the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ShippingError, UpstreamLost, WorkerLost
from .states import StateType

if TYPE_CHECKING:
    from .tasks import Task


@dataclass(frozen=True, slots=True)
class LostAttempt:
    """The verdict: the state the run ends in unless `retry_delay` says it is tried again
    (after that many seconds), the message to record, and the error the state carries."""

    type: StateType
    reason: str
    error: BaseException
    retry_delay: float | None = None


def counts_as_attempt(error: BaseException) -> bool:
    """Whether the lost attempt reached a worker and so counts in `run_count`."""
    return isinstance(error, WorkerLost)


def judge_lost_attempt(task: Task[..., Any], error: BaseException, attempts: int, lost: int) -> LostAttempt:
    """The verdict for an attempt lost with `error`, given the run's `attempts` and `lost`
    attempts so far, this one included when it counts (`counts_as_attempt`)."""
    if isinstance(error, ShippingError):
        return LostAttempt(StateType.FAILED, str(error), error)
    if not isinstance(error, WorkerLost):
        reason = str(error) if isinstance(error, UpstreamLost) else could_not_run(error)
        return LostAttempt(StateType.CRASHED, reason, error)
    if task.crash_retries is None:
        retry, budget = attempts, task.retries  # the k-th retry, of the shared budget
    else:
        retry, budget = lost, task.crash_retries
    if retry <= budget:
        delay = task.retry_delay_for(retry - 1)
        reason = f"attempt {attempts} lost: {error}; retry {retry} of {budget} in {delay:.3g}s"
        return LostAttempt(StateType.CRASHED, reason, error, delay)
    if attempts > 1 and lost == attempts:
        reason = (
            f"every attempt ({attempts} of {attempts}) lost its worker, so the task itself "
            f"likely kills it; the last: {error}"
        )
        return LostAttempt(StateType.FAILED, reason, error)
    return LostAttempt(StateType.CRASHED, str(error), error)


def could_not_run(error: BaseException) -> str:
    return f"the task runner could not run it: {type(error).__name__}: {error}"
