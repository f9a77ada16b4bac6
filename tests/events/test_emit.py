"""Events end to end: emitted from a process of their own and read back, and every run state
change read as an event, from the same rows as the run's history."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from uuid import UUID

import pytest

from headwater.api import StateClient, reset_recorder


@pytest.fixture(autouse=True)
def _own_service() -> None:
    reset_recorder()


def _client():  # type: ignore[no-untyped-def]
    from headwater.api.event_client import EventClient
    from headwater.deploy.connection import service_target

    return EventClient(service_target())


def test_an_event_emitted_in_another_process_is_stored_before_it_exits() -> None:
    code = textwrap.dedent(
        """
        from headwater.events import emit_event
        for i in range(3):
            emit_event("sales.table.refreshed", resource={"headwater.resource.id": "warehouse.sales"},
                       payload={"rows": 1200 + i}, related=[{"headwater.resource.id": "team.finance"}])
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert done.returncode == 0, done.stderr
    with _client() as client:
        found = client.recent(name="sales.*", resource="warehouse.*")
    assert sorted(e.payload["rows"] for e in found) == [1200, 1201, 1202]
    assert found[0].related == [{"headwater.resource.id": "team.finance"}]


def test_run_state_changes_are_events_that_match_the_history() -> None:
    from headwater import flow, task

    @task
    def one() -> int:
        return 1

    @flow
    def evented() -> int:
        return one() + one.submit().result()

    evented()
    with _client() as client:
        events = client.recent(name="headwater.*-run.*", limit=1000)
    flow_events = [e for e in events if e.event.startswith("headwater.flow-run.")]
    assert {e.event for e in flow_events} >= {"headwater.flow-run.Pending", "headwater.flow-run.Running", "headwater.flow-run.Completed"}
    run_id = UUID(flow_events[0].resource_id.split(".", 2)[2])
    from headwater.deploy.connection import service_target

    with StateClient(service_target()) as reader:
        history = reader.read_history(run_id)
    assert sorted(e.id for e in flow_events) == sorted(s.transition_id for s in history)  # the same rows
    task_events = [e for e in events if e.event == "headwater.task-run.Completed"]
    assert len(task_events) == 2
    assert {"headwater.resource.id": f"headwater.flow-run.{run_id}", "headwater.resource.role": "flow-run"} in task_events[0].related


def test_bad_events_are_refused_naming_the_problem() -> None:
    from headwater.events import emit_event

    with pytest.raises(ValueError, match="headwater.resource.id"):
        emit_event("x.happened", resource={"name": "no id"})
    with pytest.raises(ValueError, match="over the limit of 65536"):
        emit_event("x.happened", resource={"headwater.resource.id": "r"}, payload={"blob": "y" * 70_000})


def test_a_follower_gets_new_events_pushed() -> None:
    import threading

    from headwater.events import emit_event, flush_events

    seen: list[str] = []
    with _client() as client:
        stream = client.follow(name="ping.*")
        reader = threading.Thread(target=lambda: seen.extend(e.event for _, e in zip(range(2), stream)), daemon=True)
        reader.start()
        import time

        time.sleep(0.5)
        emit_event("ping.one", resource={"headwater.resource.id": "r"})
        emit_event("ping.two", resource={"headwater.resource.id": "r"})
        assert flush_events(10)
        reader.join(10)
    assert seen == ["ping.one", "ping.two"]


def test_a_secret_loaded_here_is_masked_in_an_event_payload() -> None:
    from headwater.blocks import Secret
    from headwater.events import emit_event, flush_events

    Secret(value="s3cr3t-token-value").save("api-token")
    token = Secret.load("api-token").get()
    emit_event("deploy.done", resource={"headwater.resource.id": "svc"}, payload={"note": f"used {token}", "n": 1})
    assert flush_events(10)
    with _client() as client:
        (found,) = client.recent(name="deploy.done")
    from headwater.runtime.secret_masking import forget_secrets

    forget_secrets()  # the rest of this test process has loaded no secret
    assert found.payload == {"note": "used ********", "n": 1}
