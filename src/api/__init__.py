"""The headwater state service: records flow runs, task runs and their states.

The runtime reports through `get_recorder()` (non-blocking, batched); tools read through
`StateClient` / `AsyncStateClient`; `StateServer` serves it (embedded or standalone). The server
also serves its home's result cache: `RemoteStore` is that cache with `LocalStore`'s methods,
and `open_cache_store()` picks the store a tool should use. It hands out concurrency slots as
leases: `SlotClient` takes them (`acquire`, `request`, `rate_limit`) and manages limits.
Each name is imported when first used (PEP 562 `__getattr__`): importing the package imports
none of them, so a tool that needs one corner of the service (the CLI reading the database
directly, say) does not pay for the rest: pydantic models, the codec, gRPC clients and the
server. Using a name imports its module and what that module needs (grpc, pydantic, msgpack
for most); `import headwater` imports none of it. `_SOURCES` and the `TYPE_CHECKING` imports below name the same
modules (`tests/api/test_lazy_exports.py` ties them).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import FlushTimeout as FlushTimeout
    from ..errors import RecordingError as RecordingError
    from ..errors import SlotTimeout as SlotTimeout
    from ..errors import SlotUnavailable as SlotUnavailable
    from .cache_client import RemoteStore as RemoteStore
    from .cache_client import open_cache_store as open_cache_store
    from .client import AsyncStateClient as AsyncStateClient
    from .client import StateClient as StateClient
    from .errors import AmbiguousRunId as AmbiguousRunId
    from .errors import ClientConfigError as ClientConfigError
    from .errors import DamagedDatabase as DamagedDatabase
    from .errors import InvalidPayload as InvalidPayload
    from .errors import LimitNotFound as LimitNotFound
    from .errors import PayloadTooLarge as PayloadTooLarge
    from .errors import RunNotFound as RunNotFound
    from .errors import SchemaVersionError as SchemaVersionError
    from .errors import ServerConfigError as ServerConfigError
    from .errors import ServiceUnavailable as ServiceUnavailable
    from .errors import StateServiceError as StateServiceError
    from .errors import StorageError as StorageError
    from .errors import TransitionRejected as TransitionRejected
    from .errors import Unauthenticated as Unauthenticated
    from .recorder import Recorder as Recorder
    from .recorder import RecorderStatistics as RecorderStatistics
    from .process_recorders import embedded_server as embedded_server
    from .process_recorders import RecorderTarget as RecorderTarget
    from .process_recorders import get_recorder as get_recorder
    from .process_recorders import recorder_for as recorder_for
    from .process_recorders import recorder_target as recorder_target
    from .process_recorders import reset_recorder as reset_recorder
    from .process_recorders import worker_environment as worker_environment
    from .log_records import LogLine as LogLine
    from .log_records import LogPage as LogPage
    from .log_records import LogRecord as LogRecord
    from .records import HEARTBEAT_INTERVAL as HEARTBEAT_INTERVAL
    from .records import FlowRunInfo as FlowRunInfo
    from .records import FlowRunRecord as FlowRunRecord
    from .records import Rejection as Rejection
    from .records import RunFilter as RunFilter
    from .records import StateInfo as StateInfo
    from .records import StateRecord as StateRecord
    from .records import TaskRunInfo as TaskRunInfo
    from .records import TaskRunRecord as TaskRunRecord
    from .server import StateServer as StateServer
    from .slot_client import SlotClient as SlotClient
    from .slot_handles import Lease as Lease
    from .slot_handles import Ticket as Ticket
    from .slot_records import Holder as Holder
    from .slot_records import HolderInfo as HolderInfo
    from .slot_records import LimitInfo as LimitInfo
    from .settings import Settings as Settings
    from .settings import get_settings as get_settings

#: Each public name -> the module (relative to this package) that defines or re-exports it.
_SOURCES: dict[str, str] = {
    "FlushTimeout": "..errors",
    "RecordingError": "..errors",
    "SlotTimeout": "..errors",
    "SlotUnavailable": "..errors",
    "RemoteStore": ".cache_client",
    "open_cache_store": ".cache_client",
    "AsyncStateClient": ".client",
    "StateClient": ".client",
    "AmbiguousRunId": ".errors",
    "ClientConfigError": ".errors",
    "DamagedDatabase": ".errors",
    "InvalidPayload": ".errors",
    "LimitNotFound": ".errors",
    "PayloadTooLarge": ".errors",
    "RunNotFound": ".errors",
    "SchemaVersionError": ".errors",
    "ServerConfigError": ".errors",
    "ServiceUnavailable": ".errors",
    "StateServiceError": ".errors",
    "StorageError": ".errors",
    "TransitionRejected": ".errors",
    "Unauthenticated": ".errors",
    "Recorder": ".recorder",
    "RecorderStatistics": ".recorder",
    "embedded_server": ".process_recorders",
    "RecorderTarget": ".process_recorders",
    "get_recorder": ".process_recorders",
    "recorder_for": ".process_recorders",
    "recorder_target": ".process_recorders",
    "reset_recorder": ".process_recorders",
    "worker_environment": ".process_recorders",
    "LogLine": ".log_records",
    "LogPage": ".log_records",
    "LogRecord": ".log_records",
    "HEARTBEAT_INTERVAL": ".records",
    "FlowRunInfo": ".records",
    "FlowRunRecord": ".records",
    "Rejection": ".records",
    "RunFilter": ".records",
    "StateInfo": ".records",
    "StateRecord": ".records",
    "TaskRunInfo": ".records",
    "TaskRunRecord": ".records",
    "StateServer": ".server",
    "SlotClient": ".slot_client",
    "Lease": ".slot_handles",
    "Ticket": ".slot_handles",
    "Holder": ".slot_records",
    "HolderInfo": ".slot_records",
    "LimitInfo": ".slot_records",
    "Settings": ".settings",
    "get_settings": ".settings",
}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(source, __name__), name)
    globals()[name] = value  # later lookups are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SOURCES})


__all__ = [
    "HEARTBEAT_INTERVAL",
    "AmbiguousRunId",
    "AsyncStateClient",
    "ClientConfigError",
    "DamagedDatabase",
    "FlowRunInfo",
    "FlowRunRecord",
    "FlushTimeout",
    "Holder",
    "HolderInfo",
    "InvalidPayload",
    "Lease",
    "LogLine",
    "LogPage",
    "LogRecord",
    "LimitInfo",
    "LimitNotFound",
    "PayloadTooLarge",
    "Recorder",
    "RecorderStatistics",
    "RecorderTarget",
    "RecordingError",
    "Rejection",
    "RemoteStore",
    "RunFilter",
    "RunNotFound",
    "SchemaVersionError",
    "ServerConfigError",
    "ServiceUnavailable",
    "Settings",
    "SlotClient",
    "SlotTimeout",
    "SlotUnavailable",
    "StateClient",
    "StateInfo",
    "StateRecord",
    "StateServer",
    "StateServiceError",
    "StorageError",
    "TaskRunInfo",
    "TaskRunRecord",
    "Ticket",
    "TransitionRejected",
    "Unauthenticated",
    "embedded_server",
    "get_recorder",
    "get_settings",
    "open_cache_store",
    "recorder_for",
    "recorder_target",
    "reset_recorder",
    "worker_environment",
]
