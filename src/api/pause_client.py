"""The pause calls, from a client: the flow's process pauses (`pause`), anyone resumes
(`resume`), rejects (`reject`) or looks (`read_pause`). See `pause_service.py` and `pause_store.py`.

Kept apart from `control_client.py`: a resume travels to the flow on the control stream,
but asking for one is a plain unary call, and a pause is a synchronous decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from . import codec
from . import models as m
from .client import Target, UnaryCaller, _Call
from .errors import pause_error_for_status
from .pause_store import PauseInfo


@dataclass(frozen=True, slots=True)
class PauseTicket:
    """The service's answer to a pause: its key and deadline; `resumed` when a pause with
    this key was resumed before (then the flow does not wait), with its `run_input`."""

    key: str
    deadline: float
    resumed: bool
    run_input: Any


@dataclass(frozen=True, slots=True)
class ResumeResult:
    """What `resume_flow_run` did: the run, its pause's key, who resumed, and the input as
    stored (a builtin's value wrapped as `{"value": ...}`)."""

    flow_run_id: UUID
    key: str
    by: str
    run_input: Any


@dataclass(frozen=True, slots=True)
class RejectResult:
    """What `reject_flow_run` did: the run (now FAILED), its pause's key, who rejected, and
    the FAILED state's message ("rejected by NAME: REASON")."""

    flow_run_id: UUID
    key: str
    by: str
    message: str


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _ticket(out: m.PauseOut) -> PauseTicket:
    return PauseTicket(out.key, out.deadline, out.resumed, _loads(out.run_input))


def _resume_result(out: m.ResumeOut) -> ResumeResult:
    return ResumeResult(codec.uuid_of(out.flow_run_id), out.key, out.by, _loads(out.run_input))


def _reject_result(out: m.RejectOut) -> RejectResult:
    return RejectResult(codec.uuid_of(out.flow_run_id), out.key, out.by, out.message)


def pause_info(out: m.PauseInfoOut, flow_run_id: UUID) -> PauseInfo | None:
    if not out.found:
        return None
    assert out.key is not None and out.created is not None and out.deadline is not None
    return PauseInfo(
        0, flow_run_id, out.key, _loads(out.input_schema), out.created, out.deadline, out.resolved,
        out.outcome, out.resolved_by, _loads(out.run_input),
    )


PAUSE_FLOW_RUN = _Call("PauseFlowRun", m.PauseOut, _ticket, write=True)
RESUME_FLOW_RUN = _Call("ResumeFlowRun", m.ResumeOut, _resume_result, write=True)
REJECT_FLOW_RUN = _Call("RejectFlowRun", m.RejectOut, _reject_result, write=True)
READ_PAUSE = _Call("ReadPause", m.PauseInfoOut, lambda out: out)


class PauseClient(UnaryCaller):
    _error_for = staticmethod(pause_error_for_status)

    def __init__(self, target: Target | str | None, *, timeout: float = 10.0, retry_for: float = 30.0) -> None:
        super().__init__(target, timeout=timeout, retry_for=retry_for)

    def pause(self, flow_run_id: UUID, key: str, input_schema: dict[str, Any] | None, timeout: float) -> PauseTicket:
        body: dict[str, Any] = {"flow_run_id": flow_run_id.bytes, "key": key, "timeout": float(timeout)}
        if input_schema is not None:
            body["input_schema"] = json.dumps(input_schema)
        return self._call(PAUSE_FLOW_RUN, body)

    def resume(self, ident: UUID | str, run_input: Any = None, *, by: str | None = None) -> ResumeResult:
        body: dict[str, Any] = {"id": str(ident)}
        if run_input is not None:
            body["run_input"] = json.dumps(run_input)
        if by:
            body["by"] = by
        return self._call(RESUME_FLOW_RUN, body)

    def reject(self, ident: UUID | str, reason: str | None = None, *, by: str | None = None) -> RejectResult:
        body: dict[str, Any] = {"id": str(ident)}
        if reason:
            body["reason"] = reason
        if by:
            body["by"] = by
        return self._call(REJECT_FLOW_RUN, body)

    def read_pause(self, flow_run_id: UUID) -> PauseInfo | None:
        out: m.PauseInfoOut = self._call(READ_PAUSE, {"id": str(flow_run_id)})
        return pause_info(out, flow_run_id)
