"""What an automation's actions do, run from the outbox (`automation_store.py`) by the
service that hosts the scheduler (a standalone server; on the embedded default a `serve` or
worker process).

Each action is a dict (`{"type": "run-deployment", "deployment": "etl/nightly", ...}`); its
string values are Jinja templates rendered in Jinja's sandbox with `event` (the event that
made the firing: `{{ event.payload.rows }}`, `{{ event.resource["headwater.resource.id"] }}`),
`events`, `firing` and `automation`. Every action done or failed is itself an event
(`headwater.automation.action.executed` / `.failed`), which the loop guard keeps triggers from
counting.

A `send-notification` action (`{"block": "slack-webhook/ops", "body": ..., "subject": ...}`)
needs the block's secrets decrypted, which only `headwater.blocks` knows how to do; the
service never imports it (the arrows point the other way). The process that hosts the loop
installs it as the notifier (`set_notifier`): `headwater server start` and every worker or
`serve` process do. The block's document is read from this service's own store.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

from .automation_store import Automation, AutomationStore, FiringRow
from .block_store import BlockDocument, BlockStore
from .control_store import ControlStore
from .deploy_store import DeployStore
from .event_store import RESOURCE_ID, Event, EventStore

WEBHOOK_TIMEOUT = 10.0
_WHOLE = re.compile(r"\{\{[^{}]*\}\}")
DEFAULT_SUBJECT = "headwater automation {{ automation.name }} fired"

#: Sends one notification: (block type slug, block name, body, subject, read a stored block
#: document by slug and name) -> None; raises when the message cannot be sent.
Notifier = Callable[[str, str, str, str, Callable[[str, str], BlockDocument]], None]
_notifier: Notifier | None = None


def set_notifier(notifier: Notifier | None) -> None:
    """Install how this process sends `send-notification` actions (see the module docstring)."""
    global _notifier
    _notifier = notifier


class ActionFailed(Exception):
    """The action could not be done now (a webhook's error status, say); it is retried."""


class ActionRunner:
    def __init__(
        self, automations: AutomationStore, deployments: DeployStore, control: ControlStore, events: EventStore,
        blocks: BlockStore,
    ) -> None:
        self._automations, self._deployments, self._control, self._events = automations, deployments, control, events
        self._blocks = blocks

    def run_due(self, now: float | None = None) -> int:
        """Carry out every due firing's remaining actions in order; returns how many were done."""
        done = 0
        for firing, automation in self._automations.due(now):
            for index in range(firing.next_action, len(automation.actions)):
                action = automation.actions[index]
                try:
                    detail = self._run(action, firing, automation, index)
                except Exception as exc:  # recorded, retried with backoff (the firing stays open)
                    self._automations.action_failed(firing.seq, firing.attempts, f"action {index} ({action.get('type')}): {exc}")
                    self._emit(automation, "headwater.automation.action.failed", action, firing, {"error": str(exc)})
                    break
                self._automations.action_done(firing.seq, index, len(automation.actions))
                self._emit(automation, "headwater.automation.action.executed", action, firing, detail)
                done += 1
            else:
                if not automation.actions:
                    self._automations.action_done(firing.seq, 0, 0)
        return done

    def _run(self, action: dict[str, Any], firing: FiringRow, automation: Automation, index: int) -> dict[str, Any]:
        context = _context(firing, automation)
        kind = action["type"]
        render = _renderer(context)
        if kind == "do-nothing":
            return {}
        if kind == "run-deployment":
            parameters = _render_all(action.get("parameters") or {}, render)
            created = self._deployments.create_run(
                render(action["deployment"]), parameters=parameters, idempotency_key=f"automation:{firing.key}:{index}",
                name=f"{automation.name}-{firing.seq}", tags=("automation",),
            )  # fmt: skip
            return {"flow_run_id": str(created.flow_run_id), "created": created.created}
        if kind == "cancel-flow-run":
            run_id = _flow_run_of(action, context, render)
            outcome = self._control.request_cancel(run_id, by=f"automation {automation.name}")
            return {"flow_run_id": str(run_id), "already": outcome.already}
        if kind in ("pause-deployment", "resume-deployment"):
            dep = self._deployments.set_deployment_paused(render(action["deployment"]), kind == "pause-deployment")
            return {"deployment": dep.name, "paused": dep.paused}
        if kind in ("pause-automation", "resume-automation"):
            other = self._automations.set_enabled(render(action["automation"]), kind == "resume-automation")
            return {"automation": other.name, "enabled": other.enabled}
        if kind == "call-webhook":
            return _call_webhook(action, render, firing.key)
        if kind == "send-notification":
            return self._notify(action, render)
        raise ActionFailed(f"unknown action type {kind!r}")

    def _notify(self, action: dict[str, Any], render: Any) -> dict[str, Any]:
        if _notifier is None:
            raise ActionFailed(
                "send-notification: this process cannot load notification blocks; run the server with "
                "`headwater server start`, or host automations in a worker or `serve` process"
            )
        slug, _, name = render(action["block"]).partition("/")
        _notifier(slug, name, render(action["body"]), render(action.get("subject") or DEFAULT_SUBJECT), self._blocks.read_block)
        return {"block": f"{slug}/{name}"}

    def _emit(self, automation: Automation, name: str, action: dict[str, Any], firing: FiringRow, detail: dict[str, Any]) -> None:
        self._events.emit([Event(
            uuid.uuid4(), name, time.time(), {RESOURCE_ID: f"headwater.automation.{automation.id}",
                                             "headwater.resource.name": automation.name},
            [], {"action": action.get("type"), "firing": firing.key, **detail},
        )])  # fmt: skip


def _context(firing: FiringRow, automation: Automation) -> dict[str, Any]:
    events = firing.body.get("events") or []
    return {"event": events[-1] if events else {}, "events": events, "firing": firing.body,
            "automation": {"name": automation.name, "id": str(automation.id)}}  # fmt: skip


def _renderer(context: dict[str, Any]) -> Any:
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(autoescape=False)

    def render(value: str) -> str:
        return env.from_string(value).render(**context) if "{" in value else value

    return render


def _render_all(value: Any, render: Any) -> Any:
    """Strings rendered; a string that is one `{{ ... }}` expression and renders to JSON
    becomes that value (`"{{ event.payload.rows }}"` -> 1200, not "1200"), as a parameter
    typed `int` needs."""
    if isinstance(value, str):
        rendered = render(value)
        if _WHOLE.fullmatch(value.strip()):
            try:
                return json.loads(rendered)
            except ValueError:
                return rendered
        return rendered
    if isinstance(value, dict):
        return {k: _render_all(v, render) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_all(v, render) for v in value]
    return value


def _flow_run_of(action: dict[str, Any], context: dict[str, Any], render: Any) -> UUID:
    """The run to cancel: the action's `flow_run_id` (templated), else the triggering event's
    flow run (its resource, or a related flow run)."""
    if action.get("flow_run_id"):
        return UUID(render(action["flow_run_id"]))
    event = context["event"]
    for labels in (event.get("resource") or {}, *(event.get("related") or [])):
        rid = labels.get(RESOURCE_ID, "")
        if rid.startswith("headwater.flow-run."):
            return UUID(rid.removeprefix("headwater.flow-run."))
    raise ActionFailed("cancel-flow-run: the triggering event is about no flow run; give flow_run_id")


def _call_webhook(action: dict[str, Any], render: Any, key: str) -> dict[str, Any]:
    body = action.get("body")
    data = None if body is None else (render(body) if isinstance(body, str) else json.dumps(_render_all(body, render)))
    headers = {"Content-Type": "application/json", "Idempotency-Key": key,
               **{k: render(v) for k, v in (action.get("headers") or {}).items()}}  # fmt: skip
    request = urllib.request.Request(render(action["url"]), data=None if data is None else data.encode(),
                                     headers=headers, method=action.get("method", "POST"))  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as reply:  # noqa: S310 - the user's own URL
            return {"status": reply.status}
    except urllib.error.HTTPError as exc:
        raise ActionFailed(f"webhook answered {exc.code}: {exc.read()[:200]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ActionFailed(f"webhook unreachable: {exc}") from None
