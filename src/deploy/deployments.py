"""Turning a flow into a deployment: `to_deployment` (what `Flow.to_deployment` returns),
`apply` (register it with the service, creating or updating it in place), `deploy` (to a
work pool, for workers), and `flow_from_source` (`Flow.from_source`: a flow loaded from a
directory or a git repository, remembering where it came from, so deploying it tells the
workers where to fetch it)."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..api.deploy_store import COLLISION_STRATEGIES, Deployment, DeploymentSpec
from ..runtime.flows import Flow
from .connection import deploy_client
from .entrypoints import load_flow
from ..api.schedules import Cron, Interval, RRule, Schedule
from ..api.triggers import EventTrigger
from .parameters import parameter_schema
from .sources import LocalSource, Source, fetch, source_from

#: Set on a flow loaded by `flow_from_source`: (source, entrypoint).
_ORIGIN = "_headwater_origin"


@dataclass
class RunnerDeployment:
    """A deployment not yet registered: `apply()` registers it (`serve` and `deploy` do)."""

    name: str
    flow: Flow[..., Any]
    entrypoint: str
    source: Source
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    description: str | None = None
    version: str | None = None
    work_pool_name: str | None = None
    concurrency_limit: int | None = None
    collision_strategy: str = "enqueue"
    paused: bool = False
    #: Its schedules; None leaves the ones the service has as they are (a deploy without
    #: schedules= does not drop them), () removes them.
    schedules: tuple[Schedule, ...] | None = None
    #: Event triggers that run this deployment (each an automation named `flow/name/trigger-N`);
    #: None leaves the ones the service has as they are, () removes them.
    triggers: tuple[EventTrigger, ...] | None = None
    #: The parameters a triggered run gets (strings are templates over the event).
    trigger_parameters: dict[str, Any] = field(default_factory=dict)
    #: Each run must complete within this many seconds of being scheduled, else the
    #: automation `flow/name/deadline` fires (with `deadline_actions`); None: no deadline.
    deadline: float | None = None
    deadline_actions: tuple[dict[str, Any], ...] = ({"type": "do-nothing"},)

    @property
    def full_name(self) -> str:
        return f"{self.flow.name}/{self.name}"

    def spec(self) -> DeploymentSpec:
        return DeploymentSpec(
            self.full_name, self.flow.name, self.entrypoint, self.source.to_dict(), dict(self.parameters),
            parameter_schema(self.flow), self.tags, self.work_pool_name, self.description, self.version,
            self.paused, self.concurrency_limit, self.collision_strategy,
            None if self.schedules is None else tuple(s.to_dict() for s in self.schedules),
        )  # fmt: skip

    def apply(self) -> Deployment:
        """Create the deployment in the service, or update it in place (same id, same runs),
        and its triggers' automations."""
        with deploy_client() as client:
            deployment = client.upsert_deployment(self.spec())
        if self.triggers is not None:
            sync_triggers(deployment.name, self.triggers, self.trigger_parameters)
        sync_deadline(deployment, self.deadline, list(self.deadline_actions))
        return deployment


def to_deployment(
    flow: Flow[..., Any], name: str, *, parameters: dict[str, Any] | None = None, tags: Iterable[str] | None = None,
    description: str | None = None, version: str | None = None, work_pool_name: str | None = None,
    concurrency_limit: int | None = None, collision_strategy: str = "enqueue", paused: bool = False,
    cron: str | None = None, interval: timedelta | float | None = None, rrule: str | None = None,
    timezone: str | None = None, schedules: Iterable[Schedule] | None = None,
    triggers: Iterable[EventTrigger] | None = None, trigger_parameters: dict[str, Any] | None = None,
    deadline: timedelta | float | None = None, deadline_actions: Iterable[Any] | None = None,
) -> RunnerDeployment:
    """A deployment of `flow` named `name` (its full name is `flow-name/name`). `cron=`,
    `interval=` (a timedelta or seconds) and `rrule=` each add a schedule in `timezone`
    (default UTC); `schedules=[Cron(...), Interval(...), RRule(...)]` gives them with their
    own parameters and policies. `triggers=[EventTrigger(...)]` run it when they fire (with
    `trigger_parameters`, templated over the event). `deadline=timedelta(hours=2)`: each run
    must complete within it of being scheduled, else the automation `flow/name/deadline`
    fires (its `deadline_actions`, e.g. a `CallWebhook`)."""
    if not name or "/" in name:
        raise ValueError(f"a deployment name is non-empty and has no '/': {name!r} (its full name adds the flow's)")
    if collision_strategy not in COLLISION_STRATEGIES:
        raise ValueError(f"collision_strategy {collision_strategy!r} is not one of {', '.join(COLLISION_STRATEGIES)}")
    source, entrypoint = origin_of(flow)
    return RunnerDeployment(
        name, flow, entrypoint, source, dict(parameters or {}), tuple(tags or ()),
        description if description is not None else flow.description, version if version is not None else flow.version,
        work_pool_name, concurrency_limit, collision_strategy, paused,
        _schedules(cron, interval, rrule, timezone or "UTC", schedules),
        None if triggers is None else tuple(triggers), dict(trigger_parameters or {}),
        None if deadline is None else (deadline.total_seconds() if isinstance(deadline, timedelta) else float(deadline)),
        tuple(_action_dict(a) for a in deadline_actions) if deadline_actions else ({"type": "do-nothing"},),
    )  # fmt: skip


def _action_dict(action: Any) -> dict[str, Any]:
    if isinstance(action, dict):
        return dict(action)
    from dataclasses import asdict

    return {k: v for k, v in asdict(action).items() if v is not None}


def _schedules(
    cron: str | None, interval: timedelta | float | None, rrule: str | None, zone: str, given: Iterable[Schedule] | None,
) -> tuple[Schedule, ...] | None:
    made: list[Schedule] = list(given or ())
    if cron is not None:
        made.append(Cron(cron, timezone=zone))
    if interval is not None:
        made.append(Interval(interval if isinstance(interval, timedelta) else timedelta(seconds=interval), timezone=zone))
    if rrule is not None:
        made.append(RRule(rrule, timezone=zone))
    if not made and given is None:
        return None
    return tuple(made)


def sync_triggers(deployment: str, triggers: tuple[EventTrigger, ...], parameters: dict[str, Any]) -> None:
    """Make the automations `deployment/trigger-N` be exactly `triggers`, each running the
    deployment: one whose trigger and action are unchanged is kept (its state and firings
    with it), a changed one replaced, one no longer given deleted."""
    from ..api.automation_client import AutomationClient
    from .connection import service_target

    prefix = f"{deployment}/trigger-"
    action = {"type": "run-deployment", "deployment": deployment, "parameters": dict(parameters)}
    with AutomationClient(service_target()) as client:
        existing = {a.name: a for a in client.all() if a.name.startswith(prefix)}
        for i, trigger in enumerate(triggers):
            name, wanted = f"{prefix}{i}", trigger.to_dict()
            found = existing.pop(name, None)
            if found is not None and found.trigger == wanted and found.actions == [action]:
                continue
            if found is not None:
                client.delete(name)
            client.create(name, wanted, [action], description=f"runs deployment {deployment}")
        for name in existing:
            client.delete(name)


def sync_deadline(deployment: Deployment, seconds: float | None, actions: list[dict[str, Any]]) -> None:
    """The automation `flow/name/deadline`: a proactive trigger per flow run of the
    deployment, opened by its Scheduled state and met by its Completed state within
    `seconds`; it fires once for each run that missed. None removes it."""
    from ..api.automation_client import AutomationClient
    from ..api.errors import AutomationNotFound
    from .connection import service_target

    name = f"{deployment.name}/deadline"
    with AutomationClient(service_target()) as client:
        try:
            found = client.read(name)
        except AutomationNotFound:
            found = None
        if seconds is None:
            if found is not None:
                client.delete(name)
            return
        trigger = EventTrigger(
            posture="Proactive", after={"headwater.flow-run.Scheduled"}, expect={"headwater.flow-run.Completed"},
            match={"headwater.resource.id": "headwater.flow-run.*"},
            match_related={"headwater.resource.id": f"headwater.deployment.{deployment.id}"},
            for_each={"headwater.resource.id"}, within=float(seconds),
        ).to_dict()  # fmt: skip
        if found is not None and found.trigger == trigger and found.actions == actions:
            return
        if found is not None:
            client.delete(name)
        client.create(name, trigger, actions, description=f"runs of {deployment.name} complete within {seconds:g} s")


def deploy(*deployments: RunnerDeployment, work_pool_name: str | None = None) -> list[Deployment]:
    """Register deployments for the workers of a work pool (each deployment's own pool, or
    `work_pool_name`). The pool must exist: `headwater work-pool create NAME`."""
    done = []
    for item in deployments:
        pool = item.work_pool_name or work_pool_name
        if pool is None:
            raise ValueError(f"deployment {item.full_name!r} names no work pool: pass work_pool_name=")
        item.work_pool_name = pool
        done.append(item.apply())
    return done


def flow_from_source(source: str | Path | Source, entrypoint: str) -> Flow[..., Any]:
    """The flow at `entrypoint` in `source` (a directory, or a git URL / `GitSource` fetched
    into `HEADWATER_HOME/sources`), remembering both for `deploy`."""
    from ..api.settings import get_settings

    where = source_from(source)
    flow = load_flow(entrypoint, base=fetch(where, get_settings().home / "sources"))
    setattr(flow, _ORIGIN, (where, entrypoint))
    return flow


def origin_of(flow: Flow[..., Any]) -> tuple[Source, str]:
    """Where a deployment of `flow` fetches its code: what `flow_from_source` remembered, or
    the file that defines the flow's function (its directory, and `file.py:function`)."""
    remembered = getattr(flow, _ORIGIN, None)
    if remembered is not None:
        return remembered  # type: ignore[no-any-return]
    file = inspect.getsourcefile(flow.fn)
    if file is None:
        raise ValueError(f"flow {flow.name!r} is not defined in a file; deploy it from one, or use Flow.from_source")
    path = Path(file).resolve()
    return LocalSource(str(path.parent)), f"{path.name}:{flow.fn.__name__}"
