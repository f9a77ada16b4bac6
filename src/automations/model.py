"""The Python face of automations: `Automation(name, trigger, actions).create()`, and the
actions as small classes whose fields are what the service stores (their string fields are
Jinja templates over the triggering event: `automation_actions.py`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..api.automation_client import AutomationClient
from ..api.automation_store import Automation as StoredAutomation
from ..api.compound_triggers import AnyTrigger
from ..deploy.connection import service_target


@dataclass(frozen=True)
class RunDeployment:
    deployment: str
    parameters: dict[str, Any] = field(default_factory=dict)
    type: str = "run-deployment"


@dataclass(frozen=True)
class CancelFlowRun:
    """The triggering event's flow run, or `flow_run_id` (templated)."""

    flow_run_id: str | None = None
    type: str = "cancel-flow-run"


@dataclass(frozen=True)
class PauseDeployment:
    deployment: str
    type: str = "pause-deployment"


@dataclass(frozen=True)
class ResumeDeployment:
    deployment: str
    type: str = "resume-deployment"


@dataclass(frozen=True)
class PauseAutomation:
    automation: str
    type: str = "pause-automation"


@dataclass(frozen=True)
class ResumeAutomation:
    automation: str
    type: str = "resume-automation"


@dataclass(frozen=True)
class CallWebhook:
    url: str
    method: str = "POST"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    type: str = "call-webhook"


@dataclass(frozen=True)
class SendNotification:
    """A message through a notification block: `block` is its `type-slug/name`
    (`"slack-webhook/ops-alerts"`, `"email-server-credentials/oncall"`) or a saved or loaded
    block itself. `body` and `subject` are templates; the block is loaded, with its secrets,
    when the action runs, so a rotated one is used at once."""

    block: Any
    body: str
    subject: str | None = None
    type: str = "send-notification"

    def __post_init__(self) -> None:
        if not isinstance(self.block, str):
            name = getattr(self.block, "block_document_name", None)
            slug = getattr(self.block, "get_block_type_slug", None)
            if name is None or slug is None:
                raise ValueError(
                    f"SendNotification(block=...) takes 'type-slug/name' or a saved block; got {self.block!r}, "
                    f"which was never saved: save it first (`.save(name)`)"
                )
            object.__setattr__(self, "block", f"{slug()}/{name}")


@dataclass(frozen=True)
class DoNothing:
    type: str = "do-nothing"


Action = (
    RunDeployment | CancelFlowRun | PauseDeployment | ResumeDeployment | PauseAutomation | ResumeAutomation
    | CallWebhook | SendNotification | DoNothing
)


def action_dict(action: Action | dict[str, Any]) -> dict[str, Any]:
    if isinstance(action, dict):
        return dict(action)
    return {k: v for k, v in asdict(action).items() if v is not None}


@dataclass
class Automation:
    name: str
    trigger: AnyTrigger
    actions: list[Any]
    description: str | None = None
    enabled: bool = True

    def create(self) -> StoredAutomation:
        """Store it in the service, evaluated from now on. Refused when it exists already, or
        when its trigger would count its own actions' events (it could fire itself forever)."""
        with AutomationClient(service_target()) as client:
            return client.create(self.name, self.trigger.to_dict(), [action_dict(a) for a in self.actions],
                                 description=self.description, enabled=self.enabled)  # fmt: skip

    def dry_run(self, hours: float = 24.0) -> dict[str, Any]:
        """How often this automation would have fired over the stored events of the last
        `hours`, before it is created: `{"events_read", "outcomes": [...]}`. Nothing runs."""
        import time

        with AutomationClient(service_target()) as client:
            return client.dry_run(self.trigger.to_dict(), time.time() - hours * 3600)

    @staticmethod
    def read(name: str) -> StoredAutomation:
        with AutomationClient(service_target()) as client:
            return client.read(name)

    @staticmethod
    def pause(name: str) -> StoredAutomation:
        with AutomationClient(service_target()) as client:
            return client.set_enabled(name, False)

    @staticmethod
    def resume(name: str) -> StoredAutomation:
        with AutomationClient(service_target()) as client:
            return client.set_enabled(name, True)

    @staticmethod
    def delete(name: str) -> None:
        with AutomationClient(service_target()) as client:
            client.delete(name)
