"""Every error the state service and its clients raise, and their gRPC status codes.

    StateServiceError
    ├── InvalidPayload (ValueError)      malformed msgpack, wrong types, unknown fields, too deep
    ├── PayloadTooLarge (ValueError)     a message or field over its size limit
    ├── TransitionRejected               the orchestration rules refused a state change
    ├── RunNotFound (LookupError)        no run with that id (or id prefix)
    ├── AmbiguousRunId (LookupError)     an id prefix that matches more than one run
    ├── Unauthenticated (PermissionError) missing or wrong bearer token
    ├── ServiceUnavailable (ConnectionError) the server could not be reached in time
    ├── SchemaVersionError               the database was written by a newer, unknown schema
    ├── ServerConfigError (ValueError)   the server refuses to start as configured
    └── RecordingError                   the recorder could not record some runs
        └── FlushTimeout (TimeoutError)  flush() ran out of time before everything committed

`status_code_for` is the one place that maps an error to a `grpc.StatusCode`;
`error_for_status` is its inverse, used by clients to re-raise the server's error.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import grpc


class StateServiceError(Exception):
    """Root of every error raised by `headwater.api`."""


class InvalidPayload(StateServiceError, ValueError):
    """A request body could not be decoded or did not validate."""


class PayloadTooLarge(StateServiceError, ValueError):
    """A request body or one of its fields is over its size limit."""


class TransitionRejected(StateServiceError):
    """The orchestration rules refused a state change."""


class RunNotFound(StateServiceError, LookupError):
    """No run has that id or id prefix."""


class AmbiguousRunId(StateServiceError, LookupError):
    """An id prefix matches more than one run."""


class Unauthenticated(StateServiceError, PermissionError):
    """The call carried no bearer token, or the wrong one."""


class ServiceUnavailable(StateServiceError, ConnectionError):
    """The state service could not be reached before the retry budget ran out."""


class SchemaVersionError(StateServiceError):
    """The database schema is newer than this version of headwater understands."""


class ServerConfigError(StateServiceError, ValueError):
    """The server refuses to start with this configuration (e.g. no token off loopback)."""


class RecordingError(StateServiceError):
    """Some recorded runs never reached the server; `run_ids` names them."""

    def __init__(self, message: str, run_ids: Iterable[UUID] = ()) -> None:
        self.run_ids: frozenset[UUID] = frozenset(run_ids)
        shown = ", ".join(sorted(str(r) for r in self.run_ids)[:20])
        more = f" (+{len(self.run_ids) - 20} more)" if len(self.run_ids) > 20 else ""
        super().__init__(f"{message}; unrecorded runs: {shown or 'none'}{more}")


class FlushTimeout(RecordingError, TimeoutError):
    """`Recorder.flush` timed out before everything enqueued was committed."""


_CODES: dict[type[StateServiceError], grpc.StatusCode] = {
    InvalidPayload: grpc.StatusCode.INVALID_ARGUMENT,
    PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TransitionRejected: grpc.StatusCode.FAILED_PRECONDITION,
    RunNotFound: grpc.StatusCode.NOT_FOUND,
    AmbiguousRunId: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    ServiceUnavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code_for(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status a server sends for `exc`; anything unexpected is INTERNAL."""
    for cls in type(exc).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def error_for_status(code: grpc.StatusCode, details: str) -> StateServiceError:
    """The client-side exception for a status the server sent (inverse of the table above)."""
    for cls, mapped in _CODES.items():
        if mapped == code and cls is not AmbiguousRunId:
            return cls(details)
    return StateServiceError(f"{code.name}: {details}")
