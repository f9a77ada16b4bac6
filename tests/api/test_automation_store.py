"""The automation outbox on real SQLite: a firing is recorded once however often evaluation
repeats, and an action redone after a crash between doing it and recording it acts once."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from headwater.api.automation_actions import ActionRunner
from headwater.api.automation_store import AutomationStore
from headwater.api.block_store import BlockStore
from headwater.api.control_store import ControlStore
from headwater.api.deploy_store import DeploymentSpec, DeployStore
from headwater.api.event_store import Event, EventStore
from headwater.api.settings import DB_FILENAME
from headwater.api.storage import Storage
from headwater.api.triggers import EventTrigger


def test_an_action_redone_after_a_crash_acts_once(home: Path) -> None:
    path = home / DB_FILENAME
    storage = Storage(path)
    stores = [cls(path, beside_storage=True) for cls in (AutomationStore, DeployStore, ControlStore, EventStore, BlockStore)]
    automations, deployments, control, events, blocks = stores
    try:
        deployments.upsert_deployment(DeploymentSpec("f/d", "f", "f.py:f", {"kind": "local", "path": "/tmp"}, {}, {}))
        automations.create("a", EventTrigger(expect={"x.happened"}).to_dict(),
                           [{"type": "run-deployment", "deployment": "f/d"}])  # fmt: skip
        events.emit([Event(uuid.uuid4(), "x.happened", time.time(), {"headwater.resource.id": "r"})])
        assert automations.evaluate(events) == 1
        assert automations.evaluate(events) == 0  # evaluated again: nothing new
        (firing, automation), = automations.due(lease=0.0)
        # The action ran, and the process died before recording it: its run exists already.
        deployments.create_run("f/d", name="first", idempotency_key=f"automation:{firing.key}:0")
        assert ActionRunner(automations, deployments, control, events, blocks).run_due() == 1
        runs = storage.reader().execute("SELECT count(*) FROM flow_runs WHERE deployment_id IS NOT NULL").fetchone()[0]
        assert runs == 1
        assert automations.firings("a")[0].finished is not None
    finally:
        for store in stores:
            store.close()
        storage.close()


def test_a_claim_left_by_a_dead_runner_is_released_for_the_next(
    automation_stores: tuple[AutomationStore, EventStore],
) -> None:
    automations, events = automation_stores
    automations.create("a", EventTrigger(expect={"x.happened"}).to_dict(), [{"type": "do-nothing"}])
    events.emit([Event(uuid.uuid4(), "x.happened", time.time(), {"headwater.resource.id": "r"})])
    assert automations.evaluate(events) == 1
    assert len(automations.due()) == 1  # claimed (then the runner dies before acting)
    assert automations.due() == []  # held by that claim for its lease
    assert automations.release_claims() == 1  # what a standalone server does at its start
    ((firing, _),) = automations.due()
    assert firing.finished is None and firing.next_action == 0
