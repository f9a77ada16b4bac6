"""Orchestration rules: which state changes the server accepts. A pure table, no I/O.

State types are plain strings on the wire (the runtime owns the `StateType` enum); named
sub-states ride on a type, e.g. "Retrying" is a RUNNING state. `check_transition` is the only
decision function; storage calls it for every proposed state.

`STATE_TYPES`, `TERMINAL`, `ALLOWED` and `STATE_NAMES` restate `runtime/states.py` in strings,
because the api may not import the runtime. They are one table written twice, and
`tests/api/test_rules.py` ties them: it fails when the two disagree in any key, allowed
set, terminal state or sub-state name, so change both together. `RETRY_ALLOWED` is the
server's alone.

    (new run) -> PENDING | SCHEDULED | RUNNING
    SCHEDULED -> PENDING | RUNNING | CANCELLED | CRASHED | PAUSED
    PENDING   -> PENDING | RUNNING | SCHEDULED | CANCELLED | CRASHED | PAUSED | FAILED
    RUNNING   -> COMPLETED | FAILED | CRASHED | CANCELLED | PAUSED | SCHEDULED
    PAUSED    -> RUNNING | PENDING | FAILED | CANCELLED | CRASHED   (FAILED: the pause timed out or was rejected)
    (any of the four above) -> CANCELLING   (the service's cancel path, `control_store.py`)
    CANCELLING -> CANCELLED | CRASHED | FAILED | COMPLETED  (a run that ended first keeps it)
    terminal  -> nothing; with retry=True, FAILED | CRASHED | CANCELLED -> SCHEDULED | PENDING | RUNNING
"""

from __future__ import annotations

from collections.abc import Mapping

SCHEDULED = "SCHEDULED"
PENDING = "PENDING"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CRASHED = "CRASHED"
CANCELLED = "CANCELLED"
PAUSED = "PAUSED"
CANCELLING = "CANCELLING"

STATE_TYPES: frozenset[str] = frozenset(
    {SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED, CANCELLED, PAUSED, CANCELLING}
)
TERMINAL: frozenset[str] = frozenset({COMPLETED, FAILED, CRASHED, CANCELLED})

#: Named sub-state -> the state type it belongs to.
STATE_NAMES: Mapping[str, str] = {
    "Scheduled": SCHEDULED,
    "Pending": PENDING,
    "Running": RUNNING,
    "Completed": COMPLETED,
    "Failed": FAILED,
    "Crashed": CRASHED,
    "Cancelled": CANCELLED,
    "Paused": PAUSED,
    "Cancelling": CANCELLING,
    "Retrying": RUNNING,
    "AwaitingRetry": SCHEDULED,
    "Cached": COMPLETED,
    "TimedOut": FAILED,
    "NotReady": PENDING,
    "AwaitingConcurrencySlot": PENDING,
}

#: `None` stands for a run with no state yet.
ALLOWED: Mapping[str | None, frozenset[str]] = {
    None: frozenset({PENDING, SCHEDULED, RUNNING}),
    SCHEDULED: frozenset({PENDING, RUNNING, CANCELLED, CRASHED, PAUSED, CANCELLING}),
    PENDING: frozenset({PENDING, RUNNING, SCHEDULED, CANCELLED, CRASHED, PAUSED, FAILED, CANCELLING}),
    RUNNING: frozenset({COMPLETED, FAILED, CRASHED, CANCELLED, PAUSED, SCHEDULED, CANCELLING}),
    PAUSED: frozenset({RUNNING, PENDING, FAILED, CANCELLED, CRASHED, CANCELLING}),
    CANCELLING: frozenset({CANCELLED, CRASHED, FAILED, COMPLETED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CRASHED: frozenset(),
    CANCELLED: frozenset(),
}

#: Extra moves allowed only for a state change flagged `retry=True`.
RETRY_ALLOWED: Mapping[str, frozenset[str]] = {
    FAILED: frozenset({SCHEDULED, PENDING, RUNNING}),
    CRASHED: frozenset({SCHEDULED, PENDING, RUNNING}),
    CANCELLED: frozenset({SCHEDULED, PENDING, RUNNING}),
}

_EMPTY: frozenset[str] = frozenset()


def is_allowed(current: str | None, proposed: str, *, retry: bool = False) -> bool:
    """True when a run in `current` may move to `proposed`."""
    if proposed in ALLOWED.get(current, _EMPTY):
        return True
    return retry and current is not None and proposed in RETRY_ALLOWED.get(current, _EMPTY)


def check_transition(
    run_id: object, current: str | None, proposed: str, *, retry: bool = False
) -> str | None:
    """None when the change is allowed, else a message naming the run, from and to."""
    if is_allowed(current, proposed, retry=retry):
        return None
    source = current or "(new run)"
    hint = " (a terminal state; only an explicit retry may leave it)" if current in TERMINAL else ""
    return f"run {run_id}: transition {source} -> {proposed} is not allowed{hint}"


def check_state(type_: str, name: str) -> str | None:
    """None when `type_` is a known state type and `name` fits it, else what is wrong."""
    if type_ not in STATE_TYPES:
        return f"unknown state type {type_!r}; expected one of {sorted(STATE_TYPES)}"
    owner = STATE_NAMES.get(name)
    if owner is not None and owner != type_:
        return f"state name {name!r} belongs to {owner}, not {type_}"
    return None


def is_terminal(type_: str | None) -> bool:
    return type_ in TERMINAL
