"""The automation calls, from a client (`automation_service.py`)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from .automation_store import Automation, FiringRow
from .client import Target, UnaryCaller, _Call
from .deploy_models import JsonOut
from .errors import block_error_for_status


def _call(method: str, write: bool = False) -> _Call[Any]:
    return _Call(method, JsonOut, lambda out: json.loads(out.body), write=write)


def automation_from(d: dict[str, Any]) -> Automation:
    return Automation(UUID(d["id"]), d["name"], d["description"], d["trigger"], d["actions"], d["enabled"], d["created"],
                      d["updated"])  # fmt: skip


def firing_from(d: dict[str, Any]) -> FiringRow:
    return FiringRow(d["seq"], UUID(d["automation_id"]), d["key"], d["kind"], d["body"], d["created"], d["next_action"],
                     d["attempts"], d["finished"], d["error"])  # fmt: skip


class AutomationClient(UnaryCaller):
    _error_for = staticmethod(block_error_for_status)  # NOT_FOUND "no automation ..." -> AutomationNotFound

    def __init__(self, target: Target | str | None, *, timeout: float = 10.0, retry_for: float = 30.0) -> None:
        super().__init__(target, timeout=timeout, retry_for=retry_for)

    def create(self, name: str, trigger: dict[str, Any], actions: list[dict[str, Any]], *,
               description: str | None = None, enabled: bool = True) -> Automation:  # fmt: skip
        body: dict[str, Any] = {"name": name, "trigger": json.dumps(trigger), "actions": json.dumps(actions), "enabled": enabled}
        if description is not None:
            body["description"] = description
        return automation_from(self._call(_call("CreateAutomation", True), body))

    def read(self, name: str) -> Automation:
        return automation_from(self._call(_call("ReadAutomation"), {"name": name}))

    def all(self) -> list[Automation]:
        return [automation_from(d) for d in self._call(_call("ListAutomations"), {})]

    def set_enabled(self, name: str, enabled: bool) -> Automation:
        return automation_from(self._call(_call("SetAutomationEnabled", True), {"name": name, "enabled": enabled}))

    def delete(self, name: str) -> None:
        self._call(_call("DeleteAutomation", True), {"name": name})

    def dry_run(self, trigger: dict[str, Any], since: float) -> dict[str, Any]:
        """What `trigger` would have done over the events stored since `since` (no writes):
        `{"events_read": n, "outcomes": [{"kind": "firing"|"resolution", "window_start", ...}]}`."""
        return dict(self._call(_call("DryRunAutomation"), {"trigger": json.dumps(trigger), "since": float(since)}))

    def explain(self, name: str) -> dict[str, Any]:
        """The automation's open windows per bucket and its last firings, with why."""
        return dict(self._call(_call("ExplainAutomation"), {"name": name}))

    def firings(self, name: str) -> list[FiringRow]:
        return [firing_from(d) for d in self._call(_call("AutomationFirings"), {"name": name})]
