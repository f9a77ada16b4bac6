"""`serve` end to end, on the embedded default, with real processes: a script serves a
flow; this test process (another process on the same home) runs it by `run_deployment`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import headwater
from headwater.api.errors import InvalidParameters

from ..blocks.receivers import Receiver, receiver  # noqa: F401 - receiver is a fixture
from .helpers import wait_for

FLOWS = textwrap.dedent(
    """
    import sys
    from headwater import flow, run_deployment
    from headwater.runtime import deployment

    @flow(log_prints=True)
    def greet(name: str, n: int = 1) -> str:
        print(f"hello {name} x{n} from deployment {deployment.name}")
        return name * n

    @flow
    def parent() -> str:
        child = run_deployment("greet/nightly", parameters={"name": "child"}, timeout=60)
        return str(child.id)

    if __name__ == "__main__":
        import headwater
        headwater.serve(
            greet.to_deployment("nightly", parameters={"name": "world"}, tags=["etl"]),
            parent.to_deployment("outer"),
            limit=4,
        )
    """
)



@pytest.fixture
def served(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    from headwater.api import reset_recorder

    reset_recorder()  # this process's own service, on this test's home
    (tmp_path / "code").mkdir()
    script = tmp_path / "code" / "flows.py"
    script.write_text(FLOWS)
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, str(script)], stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    from headwater.deploy.connection import deploy_client

    with deploy_client() as client:
        wait_for(lambda: len(client.list_workers()) == 1 and len(client.list_deployments()) == 2, what="serve to register")
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        reset_recorder()
    print((tmp_path / "serve.log").read_text())


def test_a_served_flow_runs_by_run_deployment_from_another_process(served: subprocess.Popen[bytes]) -> None:
    started = time.monotonic()
    run = headwater.run_deployment("greet/nightly", parameters={"n": 2}, timeout=60)
    took = time.monotonic() - started
    assert run.state_type == "COMPLETED", run
    assert run.parameters == {"name": "world", "n": 2} and "etl" in run.tags
    from headwater.api import StateClient
    from headwater.deploy.connection import service_target

    with StateClient(service_target()) as client:
        history = [s.type for s in client.read_history(run.id)]
        logs = client.read_logs(run.id)
    assert history[0] == "SCHEDULED" and history[-1] == "COMPLETED" and "RUNNING" in history
    assert any("hello world x2 from deployment greet/nightly" in line.message for line in logs.lines)
    assert took < 30


def test_bad_parameters_are_refused_at_the_call_naming_the_field(served: subprocess.Popen[bytes]) -> None:
    with pytest.raises(InvalidParameters, match="parameter 'n'"):
        headwater.run_deployment("greet/nightly", parameters={"n": "lots"}, timeout=0)


def test_an_idempotency_key_runs_once_and_a_run_inside_a_flow_is_its_child(served: subprocess.Popen[bytes]) -> None:
    first = headwater.run_deployment("greet/nightly", idempotency_key="k-1", timeout=0)
    again = headwater.run_deployment("greet/nightly", idempotency_key="k-1", timeout=60)
    assert again.id == first.id and again.state_type == "COMPLETED"
    outer = headwater.run_deployment("parent/outer", timeout=90)
    assert outer.state_type == "COMPLETED", outer
    from headwater.api import StateClient
    from headwater.api.records import RunFilter
    from headwater.deploy.connection import service_target

    with StateClient(service_target()) as client:
        children = client.list_flow_runs(RunFilter(parent_flow_run_id=outer.id))
    assert len(children) == 1 and children[0].state_type == "COMPLETED" and children[0].flow_name == "greet"


def test_serve_runs_a_schedule_on_the_embedded_default(tmp_path: Path) -> None:
    from headwater.api import StateClient, reset_recorder
    from headwater.deploy.connection import service_target

    reset_recorder()
    script = tmp_path / "ticking.py"
    script.write_text(textwrap.dedent(
        """
        from headwater import flow

        @flow
        def ticking() -> None:
            pass

        if __name__ == "__main__":
            ticking.serve("every-second", interval=1)
        """
    ))  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=os.environ.copy())  # fmt: skip
    try:
        with StateClient(service_target()) as reader:
            def done() -> int:
                return sum(1 for r in reader.list_flow_runs() if r.flow_name == "ticking" and r.state_type == "COMPLETED")

            wait_for(lambda: done() >= 3, 60, "three scheduled runs served")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        reset_recorder()


def test_the_serve_process_sends_an_automations_notification_on_the_embedded_default(
    served: subprocess.Popen[bytes], receiver: Receiver,
) -> None:
    """Automations run where the embedded service hosts a worker: in the `serve` process,
    which loads the block with the key file this process saved it under."""
    from pydantic import SecretStr

    from headwater.automations import Automation, EventTrigger, SendNotification
    from headwater.blocks import SlackWebhook
    from headwater.events import emit_event, flush_events

    SlackWebhook(url=SecretStr(receiver.url)).save("ops")
    Automation("tell-ops", EventTrigger(expect={"nightly.done"}),
               [SendNotification("slack-webhook/ops", body="{{ event.payload.rows }} rows")]).create()  # fmt: skip
    emit_event("nightly.done", resource={"headwater.resource.id": "warehouse"}, payload={"rows": 3})
    assert flush_events(30)
    wait_for(lambda: receiver.bodies == [{"text": "*headwater automation tell-ops fired*\n3 rows"}], 30, "the notification")
