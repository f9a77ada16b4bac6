"""The runtime: flows, tasks, futures, states and the engines that run them.

`__all__` is the public surface (`headwater` re-exports it). Three submodules are public by
path instead, as `prefect.runtime`'s are: `flow_run`, `task_run` and `deployment`, whose
attributes describe the run executing wherever they are read (`run_metadata.py`).
"""

from ..errors import BrokenRunner as BrokenRunner
from ..errors import CancelledRun as CancelledRun
from ..errors import CrashedRun as CrashedRun
from ..errors import FailedRun as FailedRun
from ..errors import HeadwaterError as HeadwaterError
from ..errors import InvalidRunInput as InvalidRunInput
from ..errors import InvalidTransition as InvalidTransition
from ..errors import MappingLengthMismatch as MappingLengthMismatch
from ..errors import MissingContext as MissingContext
from ..errors import ParameterBindError as ParameterBindError
from ..errors import ParameterValidationError as ParameterValidationError
from ..errors import PausedRunTimeout as PausedRunTimeout
from ..errors import PauseRejected as PauseRejected
from ..errors import RecordingError as RecordingError
from ..errors import ShippingError as ShippingError
from ..errors import RunnerUnavailable as RunnerUnavailable
from ..errors import RunTimedOut as RunTimedOut
from ..errors import SlotTimeout as SlotTimeout
from ..errors import SlotUnavailable as SlotUnavailable
from ..errors import UnfinishedRun as UnfinishedRun
from ..errors import UpstreamFailed as UpstreamFailed
from ..errors import UpstreamLost as UpstreamLost
from ..errors import WorkerLost as WorkerLost
# Modules, public by path (`runtime.flow_run.name`, as in Prefect), so not in `__all__`.
from . import deployment as deployment
from . import flow_run as flow_run
from . import task_run as task_run
from .arguments import allow_failure as allow_failure
from .cancellation import cancel_flow_run as cancel_flow_run
from .arguments import unmapped as unmapped
from .context import get_run_context as get_run_context
from .concurrency import concurrency as concurrency
from .concurrency import rate_limit as rate_limit
from .flows import Flow as Flow
from .flows import flow as flow
from .futures import FlowFuture as FlowFuture
from .futures import FutureList as FutureList
from .futures import TaskFuture as TaskFuture
from .futures import as_completed as as_completed
from .futures import wait as wait
from .logs import get_run_logger as get_run_logger
from .pausing import apause_flow_run as apause_flow_run
from .pausing import pause_flow_run as pause_flow_run
from .pausing import reject_flow_run as reject_flow_run
from .pausing import resume_flow_run as resume_flow_run
from .run_tags import tags as tags
from .runs import FlowRun as FlowRun
from .runs import TaskRun as TaskRun
from .states import AwaitingRetry as AwaitingRetry
from .states import Cached as Cached
from .states import Cancelled as Cancelled
from .states import Completed as Completed
from .states import Crashed as Crashed
from .states import Failed as Failed
from .states import NotReady as NotReady
from .states import Paused as Paused
from .states import Pending as Pending
from .states import Retrying as Retrying
from .states import Running as Running
from .states import Scheduled as Scheduled
from .states import State as State
from .states import StateType as StateType
from .states import TimedOut as TimedOut
from .tasks import Task as Task
from .tasks import exponential_backoff as exponential_backoff
from .tasks import task as task

__all__ = [
    "AwaitingRetry", "BrokenRunner", "Cached", "Cancelled", "CancelledRun", "Completed",
    "Crashed", "CrashedRun", "Failed", "FailedRun", "Flow", "FlowFuture", "FlowRun",
    "FutureList", "HeadwaterError", "InvalidRunInput", "InvalidTransition", "MappingLengthMismatch",
    "MissingContext", "NotReady", "ParameterBindError", "ParameterValidationError", "PauseRejected", "Paused", "PausedRunTimeout",
    "Pending", "RecordingError", "Retrying", "RunTimedOut", "RunnerUnavailable", "Running", "ShippingError",
    "Scheduled", "SlotTimeout", "SlotUnavailable", "State", "StateType", "Task", "TaskFuture", "TaskRun",
    "TimedOut", "UnfinishedRun", "UpstreamFailed", "UpstreamLost", "WorkerLost", "allow_failure", "apause_flow_run", "as_completed",
    "cancel_flow_run", "concurrency", "exponential_backoff", "flow", "get_run_context", "get_run_logger",
    "pause_flow_run", "rate_limit", "reject_flow_run", "resume_flow_run", "tags", "task", "unmapped", "wait",
]  # fmt: skip

#: Public names loaded on first use, because they need pydantic, which `import headwater`
#: does not import. Not in `__all__` (a star import would load them); `headwater` adds them.
LAZY_EXPORTS = ("RunInput",)


def __getattr__(name: str) -> object:
    if name == "RunInput":
        from .run_input import RunInput

        return RunInput
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
