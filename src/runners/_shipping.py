"""Pickling calls and values for runners whose workers live in other processes (pool, Dask,
Ray): a call that does not pickle is refused before anything is sent, naming the argument and
its type; a value that does not pickle stays on its worker behind a handle that says so.

Kept apart from `base.py` so `import headwater` does not pay for cloudpickle; only the runners
that ship calls import it.
"""

from __future__ import annotations

import pickle
from typing import Any
from uuid import UUID

import cloudpickle

from ..errors import ShippingError


def pickled_call(parts: Any, run_id: UUID, destination: str) -> bytes:
    """`parts` (a call's function, payload and whatever else goes) pickled with cloudpickle, or
    `ShippingError` naming the run, where it was going and what did not pickle: the argument
    and its type where one is to blame."""
    try:
        return cloudpickle.dumps(parts)  # type: ignore[no-any-return]
    except Exception as exc:
        payload = next((p for p in parts if hasattr(p, "parameters")), None)
        run = getattr(payload, "task_run", None)
        who = f"task run {run.name!r} ({run_id})" if run is not None else f"task run {run_id}"
        raise ShippingError(
            f"{who} cannot be sent to {destination}: {_culprit(parts, payload)} does not pickle "
            f"({type(exc).__name__}: {exc}); pass picklable arguments, create the object inside "
            "the task, or use a thread runner for this task"
        ) from exc


def _culprit(parts: Any, payload: Any) -> str:
    """What in a call does not pickle, found by pickling its pieces one by one (only once the
    whole has failed)."""
    parameters = getattr(payload, "parameters", None)
    if isinstance(parameters, dict):
        for name, value in parameters.items():
            if not _pickles(value):
                return f"its argument {name!r} (a {type_name(value)})"
    function = getattr(getattr(payload, "task", None), "fn", None)
    if function is not None and not _pickles(function):
        return f"its function {getattr(function, '__qualname__', function)!r}"
    return "its function or an argument"


def _pickles(value: Any) -> bool:
    try:
        cloudpickle.dumps(value)
    except Exception:
        return False
    return True

def type_name(value: Any) -> str:
    """`value`'s type as a user reads it: `_thread.lock`, `mymodule.Model`, `int`."""
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _label(run: Any) -> str:
    name = getattr(run, "name", None)
    return f"task run {name!r} ({getattr(run, 'id', '?')})" if name else "the task run"


class Unshippable:
    """The data handle of a value that could not leave the worker that made it (it does not
    pickle): its run completed there, and asking for the value here raises `ShippingError`
    naming the run and the value's type. A downstream run that needs it ends FAILED."""

    __slots__ = ("run", "type_name", "reason")

    def __init__(self, run: str, type_name: str, reason: str) -> None:
        self.run, self.type_name, self.reason = run, type_name, reason

    def fetch(self, timeout: float | None = None) -> Any:
        raise ShippingError(
            f"the value of {self.run} (a {self.type_name}) cannot leave the worker that made it: "
            f"it does not pickle ({self.reason}); return something picklable, or keep the value "
            "in the task and return a path or a key to it"
        )

    def __repr__(self) -> str:
        return f"<unshippable {self.type_name}: {self.reason}>"


def without_value(outcome: Any, run: Any, exc: BaseException) -> Any:
    """`outcome` with its value left behind an `Unshippable` handle that says why."""
    data = getattr(getattr(outcome, "state", None), "data", None)
    handle = Unshippable(_label(run), type_name(data), f"{type(exc).__name__}: {exc}")
    return outcome.detach(handle)


class Outgoing:
    """An outcome kept on a worker that pickles itself, in one pass, when it has to leave (to
    another worker, or to the flow): if its value does not pickle, it leaves without it, behind
    an `Unshippable` handle. Without this a Dask worker asked for such a value answered with
    an error its peer retried forever (the downstream run hung), and Ray stored an opaque error.

    Pickled with protocol 5 and out-of-band buffers, so a large array is not copied once more;
    `dumps` is the cloudpickle to use (Ray's own, which records the `ObjectRef`s inside)."""

    __slots__ = ("outcome", "run")
    dumps: Any = staticmethod(cloudpickle.dumps)

    def __init__(self, outcome: Any, run: Any) -> None:
        self.outcome = outcome
        self.run = run  # the worker's copy of the TaskRun, named only in an error

    def __reduce_ex__(self, protocol: Any) -> Any:
        buffers: list[Any] = []
        try:
            if isinstance(protocol, int) and protocol >= 5:
                header = self.dumps(self.outcome, protocol=protocol, buffer_callback=buffers.append)
            else:
                header = self.dumps(self.outcome)
        except Exception as exc:
            return (_as_is, (without_value(self.outcome, self.run, exc),))
        return (_loads, (header, *buffers))


def _as_is(value: Any) -> Any:
    return value


def _loads(header: bytes, *buffers: Any) -> Any:
    return pickle.loads(header, buffers=buffers)


def arrived(outcome: Any) -> Any:
    """An upstream outcome as a runner was handed it: unwrapped when it never left its worker."""
    return outcome.outcome if type(outcome) is Outgoing else outcome


def fetched_value(outcome: Any) -> Any:
    """The value in an outcome fetched from where its run left it; `ShippingError` for one
    that could not leave its worker."""
    data = arrived(outcome).state.data
    if type(getattr(data, "handle", None)) is Unshippable:
        return data.handle.fetch()
    return data
