"""Automations: a trigger over the event log and actions to take when it fires, kept and run
by the state service (`headwater.api.automation_store`).

    from headwater.automations import Automation, EventTrigger, RunDeployment

    Automation(
        "rerun-on-refresh",
        trigger=EventTrigger(expect={"sales.table.refreshed"}, match={"headwater.resource.id": "warehouse.*"}),
        actions=[RunDeployment("report/daily", parameters={"rows": "{{ event.payload.rows }}"})],
    ).create()
"""

from ..api.compound_triggers import CompoundTrigger as CompoundTrigger
from ..api.compound_triggers import SequenceTrigger as SequenceTrigger
from ..api.deadline_triggers import DeadlineTrigger as DeadlineTrigger
from ..api.triggers import EventTrigger as EventTrigger
from .model import (
    Automation as Automation,
    CallWebhook as CallWebhook,
    CancelFlowRun as CancelFlowRun,
    DoNothing as DoNothing,
    PauseAutomation as PauseAutomation,
    PauseDeployment as PauseDeployment,
    ResumeAutomation as ResumeAutomation,
    ResumeDeployment as ResumeDeployment,
    RunDeployment as RunDeployment,
    SendNotification as SendNotification,
)

__all__ = [
    "Automation", "CallWebhook", "CancelFlowRun", "CompoundTrigger", "DeadlineTrigger", "DoNothing", "EventTrigger", "PauseAutomation",
    "PauseDeployment", "ResumeAutomation", "ResumeDeployment", "RunDeployment", "SendNotification", "SequenceTrigger",
]  # fmt: skip
