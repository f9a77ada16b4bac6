"""Every error headwater raises, in one tree, at the bottom of the package.

    HeadwaterError
    ├── InvalidTransition            a state change the state machine forbids
    ├── UpstreamFailed               a run did not start because an upstream did not complete
    ├── UnfinishedRun                asked for the result of a run that has not finished
    ├── FailedRun                    a run failed without an exception to re-raise
    ├── ParameterBindError (TypeError)        arguments don't fit the function's signature
    ├── ParameterValidationError (ValueError) a flow parameter failed pydantic validation
    ├── MappingLengthMismatch (ValueError)    `.map()` iterables of different lengths
    ├── RunTimedOut (TimeoutError)            a run passed its `timeout_seconds`
    ├── CancelledRun                          a run was cancelled
    ├── PausedRunTimeout (TimeoutError)       nobody resumed a paused flow run before its
    │                                         pause's timeout; the run ended FAILED
    ├── PauseRejected                         someone rejected a paused flow run instead of
    │                                         resuming it; the run ended FAILED
    ├── InvalidRunInput (ValueError)          a resume's input does not fit the schema the
    │                                         pause waits for; the run stays paused
    ├── CrashedRun                            a run ended by something other than its own code
    │   ├── WorkerLost                        the worker process running an attempt died
    │   └── UpstreamLost                      a finished upstream's value was lost with its
    │                                         worker; it is never computed again
    ├── MissingContext (RuntimeError)         a run-scoped helper used outside any run
    ├── SlotTimeout (TimeoutError)            waited too long for a concurrency slot
    ├── SlotUnavailable                       a slot can never be granted as the limits stand
    │                                         (a limit of 0, more slots asked than it has,
    │                                         or no limit of that name with strict=True)
    ├── BrokenRunner                          a task runner can no longer accept work (it
    │   │                                     was shut down, or its cluster's head went away)
    │   └── PreflightFailed                   workers cannot run this flow's task runs: they
    │                                         lack a compatible headwater or cannot reach the
    │                                         state service (checked when the runner starts)
    ├── RunnerUnavailable (ImportError)       a runner's optional dependency is missing
    ├── ShippingError (TypeError)             a call or a value could not cross to or from
    │                                         a worker process (it does not pickle)
    ├── UnhashableInput (TypeError)           a value cannot be part of a cache key (a lock,
    │                                         a generator, an open file); names where it is
    ├── CacheStoreError (OSError)             the result cache's directory or key file cannot
    │                                         be used (permissions, a read-only home)
    ├── EntrypointError                       a deployment's entrypoint does not name a flow
    │                                         that loads (no such file or module, no such
    │                                         attribute, not a flow, the file raised)
    ├── SourceError                           a deployment's code could not be fetched (no
    │                                         `git`, the clone failed, no such commit/branch)
    ├── SecretKeyError (ValueError)           the key for secret fields cannot be used: a
    │                                         malformed HEADWATER_SECRET_KEY, or a key file
    │                                         inside HEADWATER_HOME or unreadable
    ├── SecretKeyMismatch                     a stored secret does not decrypt with the key in
    │                                         use: it was saved under another key
    ├── BlockSchemaMismatch (ValueError)      a stored block document no longer fits its class;
    │                                         names each field and its problem
    ├── NotificationFailed                    a notification block's message was refused (an
    │                                         HTTP status, an SMTP error) or could not be sent
    ├── RecordingError                        some runs never reached the state service, or it
    │   │                                     refused them (it declared the flow run crashed)
    │   └── FlushTimeout (TimeoutError)       flush() ran out of time before all was committed
    └── StateServiceError                     the state service refused a call or was away;
        └── ...                               its subtree lives in `headwater.api.errors`

    CancelInterrupt (BaseException)           raised inside a running task (or the flow's
                                              next submit) when its flow run is cancelled

This module imports nothing of ours, so every package (runtime, runners, cache, api) can
raise these without an arrow pointing back up.

`StateServiceError` and its subtree live in `api/errors.py`, next to the one function that
maps them to gRPC status codes, because that module imports grpc. `RecordingError` is raised
by the api's recorder but lives here: a top-level flow re-raises it, so users catch it by
`headwater.RecordingError`, and `import headwater` must not import grpc.

Failures inside user code are not wrapped: they become FAILED states that carry the original
exception, and `result()` re-raises that same exception object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID


class HeadwaterError(Exception):
    """Root of every error raised by headwater itself."""


class InvalidTransition(HeadwaterError):
    """A proposed state change is not allowed from the run's current state."""


class UpstreamFailed(HeadwaterError):
    """A task run never started because an upstream run did not complete."""


class UnfinishedRun(HeadwaterError):
    """The result of a run was requested before the run reached a final state."""


class FailedRun(HeadwaterError):
    """A run failed without an exception to re-raise (e.g. a FAILED state built from a
    message alone, or read back from the state service)."""


class ParameterBindError(HeadwaterError, TypeError):
    """The arguments given do not match the function's signature."""


class ParameterValidationError(HeadwaterError, ValueError):
    """A flow parameter did not validate against its type annotation."""


class MappingLengthMismatch(HeadwaterError, ValueError):
    """`.map()` was given iterables of different lengths."""


class RunTimedOut(HeadwaterError, TimeoutError):
    """A task or flow run exceeded its `timeout_seconds`."""


class CancelledRun(HeadwaterError):
    """A run was cancelled before it could finish."""


class PausedRunTimeout(HeadwaterError, TimeoutError):
    """Raised by `pause_flow_run` when nobody resumed the run within its `timeout`: the state
    service ended the run FAILED at the deadline (its message says the pause timed out)."""


class PauseRejected(HeadwaterError):
    """Raised by `pause_flow_run` when someone rejected the paused run (`reject_flow_run`,
    `headwater runs reject`): the state service ended the run FAILED, its message "rejected
    by NAME: REASON". `by` and `reason` are those of the rejection (`reason` may be None)."""

    def __init__(self, message: str, by: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.by = by
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.by, self.reason))


class InvalidRunInput(HeadwaterError, ValueError):
    """A resume's input does not validate against the schema the pause stored; nothing
    changed and the run is still paused. `errors` has one line per problem, each naming the
    field (`approved: 'yes' is not of type 'boolean'`)."""

    def __init__(self, message: str, errors: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.errors))


class CrashedRun(HeadwaterError):
    """A run was ended by something other than its own code (interrupt, dead worker)."""


class WorkerLost(CrashedRun):
    """The worker process running an attempt died (killed, out of memory, its node gone). The
    message names the worker as the runner knows it (address, pid, node); the engine's own
    error (Dask's `KilledWorker`, Ray's `WorkerCrashedError`) is the `__cause__`. An attempt
    lost this way is retried like a failed one (see the task option `crash_retries`)."""


class UpstreamLost(CrashedRun):
    """A run that had finished kept its value on a worker that died, and a later run (or
    `result()`) needed it. The finished run is never executed again (that would repeat its side
    effects), so whatever needs the value ends with this error, naming the lost run."""


class MissingContext(HeadwaterError, RuntimeError):
    """A helper that needs a running flow or task was called outside of one."""


class SlotTimeout(HeadwaterError, TimeoutError):
    """Waiting for a concurrency slot took longer than allowed."""


class SlotUnavailable(HeadwaterError):
    """A request for concurrency slots that can never be granted as the limits stand: a limit
    of 0, more slots asked than the limit has, or (with `strict=True`) a name with no limit.
    Refused at once rather than queued forever; the message names the limit and the command
    that fixes it."""


class BrokenRunner(HeadwaterError):
    """A task runner was shut down or lost its workers and cannot accept work."""


class PreflightFailed(BrokenRunner):
    """Some of a task runner's workers cannot run this flow's task runs, found when the runner
    started and before any run was handed over: `problems` maps each such worker to what is
    wrong there (no headwater, another minor version, the state service out of reach) and how
    to fix it. The flow run ends CRASHED with this message."""

    def __init__(self, message: str, problems: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.problems: dict[str, str] = dict(problems or {})


class ShippingError(HeadwaterError, TypeError):
    """A task call could not be sent to a worker process, or its value back: it does not
    pickle. The message names the run and what failed to pickle."""


class CacheStoreError(HeadwaterError, OSError):
    """The result cache's directory or its key file cannot be used (permissions, a read-only
    home, a damaged key file); the message names the path and what to do."""


class UnhashableInput(HeadwaterError, TypeError):
    """A value cannot be hashed into a cache key: it has no stable content (a lock, a
    generator, an open file), its pickling fails, or it nests too deep. The message names where
    the value sits, e.g. `argument 'config' ['db'][0]: a _thread.lock`; `where` holds the
    argument ("argument 'config'", or "" for a bare value), `path` the place inside it
    ("['db'][0]") and `type_name` the offending type. Cache policies turn it into a miss with a
    warning, or raise it when they are strict."""

    def __init__(self, where: str, path: str, type_name: str, reason: str) -> None:
        self.where, self.path, self.type_name, self.reason = where, path, type_name, reason
        place = " ".join(part for part in (where, path) if part) or "value"
        super().__init__(f"{place}: a {type_name} cannot be hashed ({reason})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.where, self.path, self.type_name, self.reason))


class RunnerUnavailable(HeadwaterError, ImportError):
    """A task runner's optional dependency is not installed; the message names the extra."""


class EntrypointError(HeadwaterError):
    """A deployment's entrypoint (`path/to/file.py:my_flow` or `package.module:my_flow`) does
    not lead to a flow: the file does not exist (the message names the absolute path tried),
    the module does not import (its ImportError's text), the attribute is missing (the flows
    the module does have are listed) or is not a `@flow`, or running the file raised (that
    exception is the `__cause__`). The message says how to fix it."""


class SourceError(HeadwaterError):
    """A deployment's code could not be fetched from where it lives: a local directory that is
    gone, `git` not installed, a clone or fetch that failed (the message ends with git's own
    last lines), or a commit or branch the repository does not have (the branches it does
    have are listed). The message says how to fix it."""


class SecretKeyError(HeadwaterError, ValueError):
    """The key that encrypts block secret fields cannot be used: `HEADWATER_SECRET_KEY` is not
    a Fernet key, or the key file is inside `HEADWATER_HOME` (next to the data it protects),
    or it cannot be read or made. The message says how to fix it."""


class SecretKeyMismatch(HeadwaterError):
    """A secret field stored in a block does not decrypt with the key in use: it was saved
    under another key (or the stored token was damaged). The message names the block and
    field (`where`) and the key in use (`HEADWATER_SECRET_KEY` or the key file's path)."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.where))


class BlockSchemaMismatch(HeadwaterError, ValueError):
    """A stored block document does not validate into its class as it is now (a field added,
    renamed or retyped since it was saved). `problems` has one line per field and problem
    (`timeout: Field required`); `headwater block check` finds these before a run does."""

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.problems))


class NotificationFailed(HeadwaterError):
    """A notification block could not deliver its message: the receiver answered with an
    error (the message has the HTTP status and the start of the body), or the connection or
    the SMTP conversation failed (the underlying error is the `__cause__`)."""


class RecordingError(HeadwaterError):
    """Some recorded runs never reached the server; `run_ids` names them.

    Raised at a top-level flow's end, it carries the flow run's final `State` as `state` (None
    elsewhere), so a result computed but not recorded is not lost with it."""

    #: The flow run's final state, when a flow's end raised this.
    state: Any = None

    def __init__(self, message: str, run_ids: Iterable[UUID] = ()) -> None:
        self.run_ids: frozenset[UUID] = frozenset(run_ids)
        shown = ", ".join(sorted(str(r) for r in self.run_ids)[:20])
        more = f" (+{len(self.run_ids) - 20} more)" if len(self.run_ids) > 20 else ""
        super().__init__(f"{message}; unrecorded runs: {shown or 'none'}{more}")


class FlushTimeout(RecordingError, TimeoutError):
    """`Recorder.flush` timed out before everything enqueued was committed."""


class CancelInterrupt(BaseException):
    """Raised inside a running task (at its next bytecode, in its thread) or from the flow's
    next `submit` once the run's flow was cancelled (`cancel_flow_run`). A BaseException, as
    KeyboardInterrupt is, so an `except Exception` in user code does not swallow the cancel;
    the engines catch it and end the run CANCELLED. Here, at the bottom, so a runner can raise
    it where its engine stops a call (Ray's `ray.cancel`, `runners/_ray.py`)."""
    # Not a HeadwaterError (an Exception): it must pass through user code's `except Exception`.
