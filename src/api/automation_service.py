"""The automation calls of the state service, and its loop: evaluate triggers over new
events, then carry out due actions (`automation_store.py`, `automation_actions.py`).

The loop runs on a thread of its own (a webhook may take seconds), every half second and at
once after a commit or an emit, in a standalone server always and in an embedded service
only while it hosts a worker or `serve` (as the scheduler does).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictStr

from . import codec
from .automation_actions import ActionRunner
from .automation_store import AutomationStore
from .block_store import BlockStore
from .control_store import ControlStore
from .deploy_service import _json, _object, _objects
from .deploy_store import DeployStore
from .event_store import EventStore
from .models import JsonText, Name, Wire

log = logging.getLogger(__name__)
Handler = Callable[[bytes], dict[str, Any]]
AUTOMATION_WRITES = frozenset({"CreateAutomation", "SetAutomationEnabled", "DeleteAutomation"})
AutomationName = Annotated[StrictStr, Field(min_length=1, max_length=400)]
_INTERVAL = 0.5


class AutomationIn(Wire):
    name: AutomationName
    trigger: JsonText
    actions: JsonText
    description: Name | None = None
    enabled: StrictBool = True


class DryRunIn(Wire):
    trigger: JsonText
    since: Annotated[float, Field(strict=True, ge=0)]


class AutomationRefIn(Wire):
    name: AutomationName


class AutomationEnabledIn(Wire):
    name: AutomationName
    enabled: StrictBool


class AutomationService:
    def __init__(
        self, path: Path, events: EventStore, deployments: DeployStore, control: ControlStore, blocks: BlockStore, *,
        synchronous: str = "FULL", hosting: Callable[[], bool] = lambda: True, after_cancel: Callable[[], None] = lambda: None,
        sole_runner: bool = False,
    ) -> None:
        """`sole_runner`: no other process runs this home's automations (a standalone server),
        so claims left by a predecessor are released at once (`release_claims`)."""
        self.store = AutomationStore(path, synchronous=synchronous, beside_storage=True)
        if sole_runner:
            self.store.release_claims()
        self._events = events
        self._runner = ActionRunner(self.store, deployments, control, events, blocks)
        self._hosting, self._after_cancel = hosting, after_cancel
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="headwater-automations", daemon=True)
        self._thread.start()

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateAutomation": self.create, "ReadAutomation": self.read, "ListAutomations": self.list_all,
            "SetAutomationEnabled": self.set_enabled, "DeleteAutomation": self.delete, "AutomationFirings": self.firings,
            "DryRunAutomation": self.dry_run, "ExplainAutomation": self.explain,
        }  # fmt: skip

    def notify(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(15.0)
        self.store.close()

    def create(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(AutomationIn, data)
        made = self.store.create(body.name, _object(body.trigger, "trigger"), _objects(body.actions, "actions"),
                                 description=body.description, enabled=body.enabled)  # fmt: skip
        return _json(made)

    def read(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.read(codec.decode(AutomationRefIn, data).name))

    def list_all(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.all())

    def set_enabled(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(AutomationEnabledIn, data)
        return _json(self.store.set_enabled(body.name, body.enabled))

    def delete(self, data: bytes) -> dict[str, Any]:
        self.store.delete(codec.decode(AutomationRefIn, data).name)
        return _json(None)

    def explain(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.explain(codec.decode(AutomationRefIn, data).name))

    def dry_run(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(DryRunIn, data)
        outcomes, read = self.store.dry_run(_object(body.trigger, "trigger"), self._events, body.since)
        return _json({"events_read": read, "outcomes": [
            {"kind": "firing" if o.__class__.__name__ == "Firing" else "resolution", **o.to_dict()} for o in outcomes
        ]})  # fmt: skip

    def firings(self, data: bytes) -> dict[str, Any]:
        return _json(self.store.firings(codec.decode(AutomationRefIn, data).name))

    def run_once(self, now: float | None = None) -> tuple[int, int]:
        """One turn of the loop: (firings recorded, actions done)."""
        fired = self.store.evaluate(self._events, now)
        done = self._runner.run_due(now)
        if done:
            self._after_cancel()  # a cancel-flow-run action's message goes out now
        return fired, done

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_INTERVAL)
            self._wake.clear()
            if self._stop.is_set() or not self._hosting():
                continue
            try:
                self.run_once()
            except Exception:  # the loop must outlive one bad turn; it tries again
                log.exception("automation loop failed; retrying")
