"""`headwater.states`: where a Prefect user looks for states (`prefect.states`).

An alias: the same `State`, `StateType` and state constructors as `headwater`'s own,
re-exported. The transition table behind them is `headwater.runtime.states`.
"""

from .runtime import AwaitingRetry as AwaitingRetry
from .runtime import Cached as Cached
from .runtime import Cancelled as Cancelled
from .runtime import Completed as Completed
from .runtime import Crashed as Crashed
from .runtime import Failed as Failed
from .runtime import NotReady as NotReady
from .runtime import Paused as Paused
from .runtime import Pending as Pending
from .runtime import Retrying as Retrying
from .runtime import Running as Running
from .runtime import Scheduled as Scheduled
from .runtime import State as State
from .runtime import StateType as StateType
from .runtime import TimedOut as TimedOut

__all__ = [
    "AwaitingRetry", "Cached", "Cancelled", "Completed", "Crashed", "Failed", "NotReady",
    "Paused", "Pending", "Retrying", "Running", "Scheduled", "State", "StateType", "TimedOut",
]  # fmt: skip
