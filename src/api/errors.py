"""Every error the state service and its clients raise, and their gRPC status codes.

    HeadwaterError                           (headwater.errors, the root of every error of ours)
    ├── StateServiceError                    a call to the state service was refused or failed
    │   ├── InvalidPayload (ValueError)      malformed msgpack, wrong types, unknown fields
    │   ├── PayloadTooLarge (ValueError)     a message or field over its size limit
    │   ├── TransitionRejected               the orchestration rules refused a state change
    │   ├── RunNotFound (LookupError)        no run with that id (or id prefix)
    │   ├── AmbiguousRunId (LookupError)     an id prefix that matches more than one run
    │   ├── LimitNotFound (LookupError)      no concurrency limit of that name
    │   ├── DeploymentNotFound (LookupError) no deployment of that name or id
    │   ├── WorkPoolNotFound (LookupError)   no work pool of that name
    │   ├── WorkPoolExists                   a work pool of that name exists already
    │   ├── InvalidParameters (ValueError)   a deployment run's parameters do not fit its schema
    │   ├── ClaimLost                        a worker's claim on a run expired or was fenced off
    │   ├── BlockNotFound (LookupError)      no block document of that type and name
    │   ├── BlockExists                      a block of that type and name exists already
    │   ├── VariableExists                   a variable of that name exists already
    │   ├── InvalidVariable (ValueError)     a variable's name or value is refused
    │   ├── AutomationNotFound (LookupError) no automation of that name
    │   ├── Unauthenticated (PermissionError)     missing or wrong bearer token
    │   ├── ServiceUnavailable (ConnectionError)  the server could not be reached in time
    │   ├── ClientConfigError (ValueError)   this process's URL, token or TLS settings are
    │   │                                    malformed or do not fit the server
    │   ├── SchemaVersionError               the database was written by a newer schema
    │   ├── ServerConfigError (ValueError)   the server refuses to start as configured
    │   └── StorageError (OSError)           the database cannot be opened or written
    │       └── DamagedDatabase              the database file is not SQLite or is corrupt
    └── RecordingError                       the recorder could not record some runs
        └── FlushTimeout (TimeoutError)      flush() ran out of time before all was committed

`RecordingError` and `FlushTimeout` are defined in `headwater.errors` (no grpc there, so
`import headwater` can name them) and re-exported by `headwater.api`. They are not
`StateServiceError`s: a recording failure is the recorder's verdict, not a refused call.

Errors met before a run starts (`api.client.preflight`, `StorageError` when the database is
opened) name what was tried (the URL, never the token; the database file), the cause, and
the ways out.

`status_code_for` is the one place that maps an error to a `grpc.StatusCode`;
`error_for_status` is its inverse, used by clients to re-raise the server's error.

The result cache's calls (`cache_service.py`) also send two errors of the cache's own, so a
`RemoteStore` raises what a `LocalStore` raises: `CacheValueMissing` (the value is gone or
unusable) as NOT_FOUND, and `CacheStoreError` (the server's cache directory cannot be used)
as FAILED_PRECONDITION; `cache_error_for_status` turns them back. The slot calls
(`slot_service.py`) likewise send `LimitNotFound` as NOT_FOUND and `SlotUnavailable` (from
`headwater.errors`: a limit of 0, too many slots asked, an unknown name with strict) as
FAILED_PRECONDITION; `slot_error_for_status` turns them back. A resume's input that does
not fit its pause (`InvalidRunInput`, from `headwater.errors`) is INVALID_ARGUMENT, its details
starting "invalid run input"; `pause_error_for_status` turns it back, with its field errors.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ..cache.entries import CacheValueMissing
from ..errors import CacheStoreError, HeadwaterError, InvalidRunInput, SlotUnavailable

if TYPE_CHECKING:
    import grpc


class StateServiceError(HeadwaterError):
    """Root of the errors of state service calls: refused by the server, or never answered."""


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


class LimitNotFound(StateServiceError, LookupError):
    """No concurrency limit has that name."""


class DeploymentNotFound(StateServiceError, LookupError):
    """No deployment has that name (`flow-name/deployment-name`) or id."""


class WorkPoolNotFound(StateServiceError, LookupError):
    """No work pool has that name."""


class WorkPoolExists(StateServiceError):
    """A work pool of that name exists already."""


class InvalidParameters(StateServiceError, ValueError):
    """A deployment run's parameters do not fit the deployment's parameter schema; the
    message names each bad field."""


class ClaimLost(StateServiceError):
    """A worker's claim on a run is gone (expired, or the run moved on): it must not start it."""


class BlockNotFound(StateServiceError, LookupError):
    """No block document of that type and name."""


class BlockExists(StateServiceError):
    """A block of that type and name exists already (save with overwrite=True to replace it)."""


class VariableExists(StateServiceError):
    """A variable of that name exists already (set with overwrite=True to replace it)."""


class InvalidVariable(StateServiceError, ValueError):
    """A variable's name or value is refused: too long, too large, or not JSON."""


class AutomationNotFound(StateServiceError, LookupError):
    """No automation of that name."""


class Unauthenticated(StateServiceError, PermissionError):
    """The call carried no bearer token, or the wrong one."""


class ServiceUnavailable(StateServiceError, ConnectionError):
    """The state service could not be reached before the retry budget ran out."""


class ClientConfigError(StateServiceError, ValueError):
    """This process's state service settings are wrong: a malformed URL or one carrying
    credentials, a TLS CA that cannot be read, or TLS that does not fit the server."""


class SchemaVersionError(StateServiceError):
    """The database schema is newer than this version of headwater understands."""


class ServerConfigError(StateServiceError, ValueError):
    """The server refuses to start with this configuration (e.g. no token off loopback)."""


class StorageError(StateServiceError, OSError):
    """The database cannot be opened or written (read-only directory, full disk, I/O error);
    the message names the file, the cause and the remedy."""


class DamagedDatabase(StorageError):
    """The database file is not a SQLite database, is truncated, or is corrupt.

    It is never replaced silently: `headwater db reset` moves it aside (kept, renamed with a
    timestamp) so that the next start begins a new one."""


Codes = dict[type[Exception], "grpc.StatusCode"]


@functools.cache
def _tables() -> tuple[Codes, Codes, Codes]:
    """The status tables: the service's errors, the cache's and the slot calls' own. Built
    on first use, so that reading the database (the CLI) does not import gRPC (~50 ms)."""
    import grpc

    codes: Codes = {
        InvalidPayload: grpc.StatusCode.INVALID_ARGUMENT,
        PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
        TransitionRejected: grpc.StatusCode.FAILED_PRECONDITION,
        RunNotFound: grpc.StatusCode.NOT_FOUND,
        AmbiguousRunId: grpc.StatusCode.INVALID_ARGUMENT,
        Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
        ServiceUnavailable: grpc.StatusCode.UNAVAILABLE,
        # A server whose disk is full may recover once space is freed: clients retry, and
        # recorders buffer, exactly as for a server that is away; the message says why.
        StorageError: grpc.StatusCode.UNAVAILABLE,
        # A resume's input that does not fit the pause's schema (`pause_client` turns it back).
        InvalidRunInput: grpc.StatusCode.INVALID_ARGUMENT,
    }
    # The cache's errors, sent by cache calls only (so NOT_FOUND elsewhere is still RunNotFound).
    cache_codes: Codes = {
        CacheValueMissing: grpc.StatusCode.NOT_FOUND,
        # Not UNAVAILABLE: a read-only home does not heal while a client retries.
        CacheStoreError: grpc.StatusCode.FAILED_PRECONDITION,
    }
    # The slot calls' own errors, sent by slot calls only (as the cache's).
    slot_codes: Codes = {
        LimitNotFound: grpc.StatusCode.NOT_FOUND,
        SlotUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
    }
    return codes, cache_codes, slot_codes


@functools.cache
def _deploy_table() -> Codes:
    """The deployment calls' own errors, sent by those calls only (as the slots')."""
    import grpc

    return {
        DeploymentNotFound: grpc.StatusCode.NOT_FOUND,
        WorkPoolNotFound: grpc.StatusCode.NOT_FOUND,
        WorkPoolExists: grpc.StatusCode.ALREADY_EXISTS,
        InvalidParameters: grpc.StatusCode.INVALID_ARGUMENT,
        ClaimLost: grpc.StatusCode.ABORTED,
    }


@functools.cache
def _block_table() -> Codes:
    """The block and variable calls' own errors, sent by those calls only."""
    import grpc

    return {
        BlockNotFound: grpc.StatusCode.NOT_FOUND,
        BlockExists: grpc.StatusCode.ALREADY_EXISTS,
        VariableExists: grpc.StatusCode.ALREADY_EXISTS,
        InvalidVariable: grpc.StatusCode.INVALID_ARGUMENT,
        AutomationNotFound: grpc.StatusCode.NOT_FOUND,
    }


def status_code_for(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status a server sends for `exc`; anything unexpected is INTERNAL."""
    codes, cache_codes, slot_codes = _tables()
    deploy_codes = {**_deploy_table(), **_block_table()}
    for cls in type(exc).__mro__:
        code = deploy_codes.get(cls) or codes.get(cls) or cache_codes.get(cls) or slot_codes.get(cls)
        if code is not None:
            return code
    import grpc

    return grpc.StatusCode.INTERNAL


def is_sent_as_is(exc: BaseException) -> bool:
    """Whether a server sends `exc`'s own message (errors of ours that say what to do), not
    a bare "internal error"."""
    return isinstance(exc, (StateServiceError, CacheStoreError, SlotUnavailable, InvalidRunInput))


def error_for_status(code: grpc.StatusCode, details: str) -> StateServiceError:
    """The client-side exception for a status the server sent (inverse of the table above)."""
    for cls, mapped in _tables()[0].items():
        if mapped == code and cls is not AmbiguousRunId and issubclass(cls, StateServiceError):
            assert issubclass(cls, StateServiceError)
            return cls(details)
    return StateServiceError(f"{code.name}: {details}")


def cache_error_for_status(code: grpc.StatusCode, details: str) -> Exception:
    """The client-side exception for a status a cache call got: the cache's own errors for
    the codes in the cache's table, else as `error_for_status`."""
    for cls, mapped in _tables()[1].items():
        if mapped == code:
            return cls(details)
    return error_for_status(code, details)


def slot_error_for_status(code: grpc.StatusCode, details: str) -> Exception:
    """The client-side exception for a status a slot call got: `LimitNotFound` and
    `SlotUnavailable` for their codes, else as `error_for_status`."""
    for cls, mapped in _tables()[2].items():
        if mapped == code:
            return cls(details)
    return error_for_status(code, details)


def deploy_error_for_status(code: grpc.StatusCode, details: str) -> Exception:
    """The client-side exception for a status a deployment call got: the deployment errors
    told apart by code and message, else as `error_for_status`."""
    import grpc

    if code == grpc.StatusCode.NOT_FOUND:
        return WorkPoolNotFound(details) if details.startswith("work pool") else DeploymentNotFound(details)
    if code == grpc.StatusCode.INVALID_ARGUMENT and "InvalidPayload" not in details and "RunInput" not in details:
        return InvalidParameters(details)
    for cls, mapped in _deploy_table().items():
        if mapped == code:
            return cls(details)
    return error_for_status(code, details)


def block_error_for_status(code: grpc.StatusCode, details: str) -> Exception:
    """The client-side exception for a status a block or variable call got."""
    import grpc

    if code == grpc.StatusCode.NOT_FOUND:
        return AutomationNotFound(details) if details.startswith("no automation") else BlockNotFound(details)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return VariableExists(details) if details.startswith("variable") else BlockExists(details)
    if code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("variable"):
        return InvalidVariable(details)
    return error_for_status(code, details)


def pause_error_for_status(code: grpc.StatusCode, details: str) -> Exception:
    """The client-side exception for a status a pause call got: `InvalidRunInput` (its
    errors are the details' indented lines), else as `error_for_status`."""
    import grpc

    if code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("invalid run input"):
        lines = details.split("\n")
        return InvalidRunInput(details, [line.strip() for line in lines[1:]] or [lines[0]])
    return error_for_status(code, details)
