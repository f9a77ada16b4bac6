"""The pause calls of the state service: `PauseFlowRun` (the flow's process), `ResumeFlowRun`
and `RejectFlowRun` (whoever decides), `ReadPause` (the CLI's view), and the pause deadlines
on the sweeper.

Decisions are `PauseStore` transactions; a resume's (a rejection's, a timeout's) control message is pushed
at once on the run's process's control stream (`ControlService.deliver_new`), the same channel
a cancel travels on, so it is acted on exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from ..errors import InvalidRunInput
from . import codec
from . import models as m
from .control_service import ControlService
from .errors import InvalidPayload
from .pause_store import PauseInfo, PauseStore

Handler = Callable[[bytes], dict[str, Any]]
PAUSE_WRITES = frozenset({"PauseFlowRun", "ResumeFlowRun", "RejectFlowRun"})


class PauseService:
    def __init__(
        self, path: Path, resolve_id: Callable[[str], UUID], control: ControlService, *, synchronous: str = "FULL",
    ) -> None:
        self.store = PauseStore(path, synchronous=synchronous, beside_storage=True)
        self._resolve_id = resolve_id
        self._control = control

    def handlers(self) -> dict[str, Handler]:
        return {
            "PauseFlowRun": self.pause, "ResumeFlowRun": self.resume, "RejectFlowRun": self.reject,
            "ReadPause": self.read,
        }

    def close(self) -> None:
        self.store.close()

    def pause(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.PauseIn, data)
        schema = None if body.input_schema is None else _json(body.input_schema, "input_schema")
        if schema is not None and not isinstance(schema, dict):
            raise InvalidPayload("PauseIn.input_schema: a JSON schema is an object")
        pause = self.store.pause(codec.uuid_of(body.flow_run_id), body.key, schema, body.timeout)
        return {
            "key": pause.key, "deadline": pause.deadline, "resumed": pause.outcome == "resumed",
            "run_input": None if pause.run_input is None else json.dumps(pause.run_input),
        }

    def resume(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.ResumeIn, data)
        run_id = self._resolve_id(body.id)
        run_input = None if body.run_input is None else _json(body.run_input, "run_input")
        resumed = self.store.resume(run_id, run_input, by=body.by)
        self._control.deliver_new()  # pushes the resume to the run's process now
        pause = resumed.pause
        return {
            "flow_run_id": run_id.bytes, "key": pause.key, "by": pause.resolved_by,
            "run_input": None if pause.run_input is None else json.dumps(pause.run_input),
        }

    def reject(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.RejectIn, data)
        run_id = self._resolve_id(body.id)
        rejected = self.store.reject(run_id, body.reason, by=body.by)
        self._control.deliver_new()  # pushes the rejection to the run's process now
        return {
            "flow_run_id": run_id.bytes, "key": rejected.pause.key, "by": rejected.pause.resolved_by,
            "message": rejected.said,
        }

    def read(self, data: bytes) -> dict[str, Any]:
        run_id = self._resolve_id(codec.decode(m.RunRefIn, data).id)
        return pause_info_body(self.store.read(run_id))

    def sweep(self, now: float | None = None) -> list[UUID]:
        """End the runs whose pause timed out; their processes are told at once."""
        messages = self.store.settle_due(now)
        if messages:
            self._control.deliver_new()
        return [msg.flow_run_id for msg in messages]


def pause_info_body(pause: PauseInfo | None) -> dict[str, Any]:
    if pause is None:
        return {"found": False}
    return {
        "found": True, "key": pause.key,
        "input_schema": None if pause.input_schema is None else json.dumps(pause.input_schema),
        "created": pause.created, "deadline": pause.deadline, "resolved": pause.resolved,
        "outcome": pause.outcome, "resolved_by": pause.resolved_by,
        "run_input": None if pause.run_input is None else json.dumps(pause.run_input),
    }


def _json(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidRunInput(f"invalid run input: {field} is not JSON: {exc}", [f"(input): not JSON: {exc}"]) from None
