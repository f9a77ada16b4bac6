"""Pausing a flow run until someone resumes it, optionally with typed input.

    class Approval(RunInput):
        approved: bool
        note: str = ""

    @flow
    def publish() -> None:
        draft = write.submit()
        answer = pause_flow_run(wait_for_input=Approval, timeout=600)   # blocks here
        if answer.approved: ...

    $ headwater runs resume 3f2a --set approved=true --by alice

In the flow's body, `pause_flow_run` (or `await apause_flow_run` in an async flow):
1. makes sure the run's RUNNING state reached the state service (a flush of its records);
2. asks the service to pause (`PauseFlowRun`, synchronous): RUNNING -> PAUSED, with the
   input's JSON schema and a deadline the service holds (a row its sweeper wakes for);
3. waits, holding nothing but the body's thread (task runs already submitted go on), for
   this run's control stream to bring a "resume" (then the service has already recorded
   RUNNING, naming who resumed and the input; the input is validated into the flow's own
   model and returned), a "pause_timeout" (the service ended the run FAILED at the deadline:
   `PausedRunTimeout` is raised, and that FAILED is the run's end, whatever the body does
   next; `on_failure` hooks run, because the run did fail; retries do not apply), a "reject"
   (someone rejected the pause, `reject_flow_run` / `headwater runs reject`: the service ended
   the run FAILED, "rejected by NAME: REASON", and `PauseRejected` is raised; as for a
   timeout, that FAILED is the run's end, `on_failure` hooks run and retries do not apply),
   or a cancel (the body stops as it would at its next `submit`).

A pause is not a failure: pausing and resuming run no hooks. `key` makes a pause idempotent
within a run: a pause whose key was resumed before does not wait again but returns that
resume's input (Prefect's semantics; by default the key counts the pauses of the attempt,
"pause-1", "pause-2", so a retried flow does not ask twice for what it was given).

`wait_for_input` is a pydantic model (`RunInput`, a `BaseModel` that forbids unknown fields,
so a misspelt `--set` is refused, or any `BaseModel`), and the flow receives an instance of
it; or a builtin type (`int`, `str`, `bool`, `float`, `dict`, `list`, any type pydantic
validates), which becomes a one-field model `value` that resumers fill (`--input 5` or
`--set value=5`), and the flow receives the bare value, as Prefect does (`int`, not a model).
Resume input is validated by the service at the resume call, against the stored schema:
invalid input is refused there (`InvalidRunInput`, naming the fields) and the run stays paused.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload
from uuid import UUID

from ..errors import MissingContext, PausedRunTimeout, PauseRejected
from .cancellation import CancelInterrupt
from .context import flow_run_var, task_run_var
from .logs import flow_logger, run_extra
from .runs import set_state
from .states import Failed, Paused, Running

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .flow_engine import FlowRunEngine

M = TypeVar("M", bound="BaseModel")
T = TypeVar("T")

#: How long the body's thread blocks at a time while it waits: a flow's `timeout_seconds`
#: interrupts a sync body at its next bytecode, so the wait must return to Python now and then.
_WAIT_SLICE = 1.0


@dataclass(slots=True)
class FlowPause:
    """One flow run's side of its pauses: the outcomes its control stream brought, by key."""

    engine: FlowRunEngine
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    outcomes: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    #: Once the service ended the run FAILED (a pause timed out or was rejected): the error
    #: the pause raised, and the FAILED state's message as the service recorded it.
    ended_by_service: tuple[PausedRunTimeout | PauseRejected, str] | None = None
    _cancelled: bool = False
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _wakers: list[Callable[[], None]] = field(default_factory=list)

    def on_message(self, message: Any) -> None:
        """A control message for this run (on the control stream's thread)."""
        if message.kind in ("resume", "reject", "pause_timeout"):
            key = str(message.body.get("key"))
            with self._changed:
                self.outcomes[key] = (message.kind, dict(message.body))
        elif message.kind == "cancel":
            with self._changed:
                self._cancelled = True
        else:
            return
        with self._changed:
            self._changed.notify_all()
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    def outcome(self, key: str) -> tuple[str, dict[str, Any]] | None:
        with self._changed:
            if key in self.outcomes:
                return self.outcomes[key]
            return ("cancel", {}) if self._cancelled else None

    def wait(self, key: str) -> tuple[str, dict[str, Any]]:
        while True:
            with self._changed:
                found = self.outcome(key)
                if found is not None:
                    return found
                self._changed.wait(_WAIT_SLICE)

    async def wait_async(self, key: str) -> tuple[str, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(event.set)

        with self._changed:
            self._wakers.append(wake)
        try:
            while (found := self.outcome(key)) is None:
                await event.wait()
                event.clear()
            return found
        finally:
            with self._changed:
                self._wakers.remove(wake)


@dataclass(frozen=True, slots=True)
class _Ask:
    """One pause call, prepared: the run, the model the input validates into, the key."""

    engine: FlowRunEngine
    model: type[BaseModel] | None
    wrapped: bool
    key: str
    timeout: float


@overload
def pause_flow_run(timeout: float = ..., wait_for_input: None = None, key: str | None = None) -> None: ...
@overload
def pause_flow_run(timeout: float = ..., *, wait_for_input: type[M], key: str | None = None) -> M: ...
@overload
def pause_flow_run(timeout: float = ..., *, wait_for_input: type[T], key: str | None = None) -> T: ...
def pause_flow_run(timeout: float = 3600, wait_for_input: Any = None, key: str | None = None) -> Any:
    """Pause the flow run this body runs until someone resumes it (`headwater runs resume`,
    `resume_flow_run`), or `timeout` seconds pass; see the module docstring. Returns None,
    or the input: an instance of `wait_for_input` (a model), or the value (a builtin type).

    Raises `PausedRunTimeout` when nobody resumed it in time (the run is then FAILED),
    `MissingContext` outside a flow's body or in a flow that does not record."""
    ask = _prepare(timeout, wait_for_input, key)
    ticket = _ask_service(ask)
    if ticket.resumed:
        return _value(ask, ticket.run_input)
    _paused_here(ask, ticket.deadline)
    return _went_on(ask, *ask.engine.pause.wait(ask.key))


async def apause_flow_run(timeout: float = 3600, wait_for_input: Any = None, key: str | None = None) -> Any:
    """`pause_flow_run` for an async flow: the body awaits the resume; its event loop runs on."""
    import anyio

    ask = _prepare(timeout, wait_for_input, key)
    ticket = await anyio.to_thread.run_sync(_ask_service, ask)
    if ticket.resumed:
        return _value(ask, ticket.run_input)
    _paused_here(ask, ticket.deadline)
    return _went_on(ask, *await ask.engine.pause.wait_async(ask.key))


def resume_flow_run(flow_run_id: UUID | str, run_input: Any = None, *, by: str | None = None) -> Any:
    """Resume a paused flow run with `run_input`: a model instance, or JSON-able data (a dict
    of fields, or a builtin's bare value). The service validates it against the schema the
    pause stored before anything changes: `InvalidRunInput` (naming the fields) leaves the run
    paused. `by` (default: this OS user) is recorded in the run's history. Returns the
    `ResumeResult`; raises `TransitionRejected` for a run that is not paused."""
    from ..api.pause_direct import resume_here_or_there

    if hasattr(run_input, "model_dump"):  # a pydantic model
        run_input = run_input.model_dump(mode="json")
    return resume_here_or_there(flow_run_id, run_input, by=by or current_user())


def reject_flow_run(flow_run_id: UUID | str, reason: str | None = None, *, by: str | None = None) -> Any:
    """Reject a paused flow run instead of resuming it: the service ends it FAILED with
    "rejected by NAME: REASON" in its history, and the paused call in the flow raises
    `PauseRejected`; the flow's `on_failure` hooks run, since the run failed. `by` (default:
    this OS user) names who rejected. Returns the `RejectResult`; raises `TransitionRejected`
    for a run that is not paused."""
    from ..api.pause_direct import reject_here_or_there

    return reject_here_or_there(flow_run_id, reason, by=by or current_user())


def current_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _prepare(timeout: float, wait_for_input: Any, key: str | None) -> _Ask:
    if task_run_var.get() is not None:
        raise MissingContext("pause_flow_run pauses a flow run from its body; it cannot be called in a task")
    ctx = flow_run_var.get()
    engine = None if ctx is None else _engines.get(ctx.flow_run.id)
    if ctx is None or engine is None:
        raise MissingContext("pause_flow_run is called in a flow's body, while the flow runs")
    if engine.services.target is None:
        raise MissingContext("pause_flow_run needs the state service, and this flow run does not record")
    from .run_input import input_model  # pydantic, only once something pauses

    model, wrapped = (None, False) if wait_for_input is None else input_model(wait_for_input)
    return _Ask(engine, model, wrapped, key or f"pause-{next(engine.pause.counter)}", float(timeout))


def _ask_service(ask: _Ask) -> Any:
    from ..api.client import Target
    from ..api.pause_client import PauseClient

    engine = ask.engine
    if engine.reporter is not None:
        engine.reporter.flush(engine.run.id)  # the service must see RUNNING before it pauses
    url, token, tls_ca = engine.services.target  # type: ignore[misc]
    schema = None if ask.model is None else ask.model.model_json_schema()
    with PauseClient(Target.resolve(url, token, Path(tls_ca) if tls_ca else None)) as client:
        return client.pause(engine.run.id, ask.key, schema, ask.timeout)


def _paused_here(ask: _Ask, deadline: float) -> None:
    """The service recorded PAUSED: the run's local state follows, unreported."""
    run = ask.engine.run
    set_state(run, Paused(f"pause {ask.key!r}"))
    flow_logger.info(
        "Flow run %r paused (%s); resume it with: headwater runs resume %s", run.name, ask.key, run.id,
        extra=run_extra(lifecycle=True),
    )


def _went_on(ask: _Ask, kind: str, body: dict[str, Any]) -> Any:
    run = ask.engine.run
    if kind == "cancel":
        raise CancelInterrupt("flow run cancelled while paused")
    if kind == "pause_timeout":
        reason = str(body.get("reason") or "the pause timed out")
        timed_out = PausedRunTimeout(f"flow run {run.name!r}: {reason}")
        ask.engine.pause.ended_by_service = (timed_out, reason)
        raise timed_out
    if kind == "reject":
        said = str(body.get("message") or f"rejected by {body.get('by')}")
        rejected = PauseRejected(f"flow run {run.name!r}: {said}", body.get("by"), body.get("reason"))
        ask.engine.pause.ended_by_service = (rejected, said)
        raise rejected
    set_state(run, Running(f"resumed by {body.get('by')}"))
    flow_logger.info("Flow run %r resumed by %s", run.name, body.get("by"), extra=run_extra(lifecycle=True))
    return _value(ask, body.get("input"))


def _value(ask: _Ask, run_input: Any) -> Any:
    if ask.model is None:
        return None
    instance = ask.model.model_validate(run_input if run_input is not None else {})
    return getattr(instance, "value") if ask.wrapped else instance


def ended_by_service(engine: FlowRunEngine, exc: BaseException | None) -> bool:
    """If a pause of this run timed out or was rejected, set its FAILED end locally (the
    service recorded it; reporting it again would be refused) and say so: that end stands
    whatever the body did. The state carries the pause's error (what the body raised, if it
    let it through), so `result()` re-raises it."""
    ended = engine.pause.ended_by_service
    if ended is None:
        return False
    error, said = ended
    set_state(engine.run, Failed(exc if isinstance(exc, type(error)) else error, said))
    return True


_engines: dict[UUID, FlowRunEngine] = {}


def register(engine: FlowRunEngine) -> None:
    _engines[engine.run.id] = engine


def unregister(engine: FlowRunEngine) -> None:
    _engines.pop(engine.run.id, None)
