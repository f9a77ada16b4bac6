"""Automations end to end on a standalone server (a real `headwater server start`): a trigger
over emitted events fires once per threshold, its actions run from the outbox exactly once,
across a server killed and restarted; templated webhooks; the loop guard."""

from __future__ import annotations

import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from headwater.api import StateClient, reset_recorder
from headwater.api.errors import StateServiceError

from ..api.helpers import start_server_process
from ..deploy.helpers import wait_for
from .helpers import TOKEN, server  # noqa: F401 - server is a fixture

FLOW = "from headwater import flow\n\n@flow\ndef report(rows: int) -> int:\n    return rows\n"


def _deploy_report(tmp_path: Path) -> str:
    from headwater.deploy.deployments import to_deployment
    from headwater.deploy.entrypoints import load_flow

    (tmp_path / "flows.py").write_text(FLOW)
    return to_deployment(load_flow(f"{tmp_path / 'flows.py'}:report"), "daily").apply().name


def _emit(n: int, rows: int = 100) -> None:
    from headwater.events import emit_event, flush_events

    for i in range(n):
        emit_event("sales.table.refreshed", resource={"headwater.resource.id": "warehouse.sales"}, payload={"rows": rows + i})
    assert flush_events(30)


def _report_runs(url: str) -> list[Any]:
    with StateClient(url, token=TOKEN) as reader:
        return [r for r in reader.list_flow_runs() if r.flow_name == "report"]


def test_a_threshold_trigger_runs_a_deployment_once_per_firing_with_templated_parameters(tmp_path: Path, server: Any) -> None:
    from headwater.automations import Automation, EventTrigger, RunDeployment

    url, _, _ = server
    name = _deploy_report(tmp_path)
    Automation("rerun", EventTrigger(expect={"sales.table.*"}, match={"headwater.resource.id": "warehouse.*"},
                                     threshold=2, within=60),
               [RunDeployment(name, parameters={"rows": "{{ event.payload.rows }}"})]).create()  # fmt: skip
    _emit(5, rows=100)  # fires at the 2nd and the 4th
    wait_for(lambda: len(_report_runs(url)) == 2, 30, "two runs")
    time.sleep(1.5)  # nothing more comes
    runs = _report_runs(url)
    assert len(runs) == 2 and sorted(r.parameters["rows"] for r in runs) == [101, 103]  # jinja renders text; the schema coerces
    from headwater.api.automation_client import AutomationClient
    from headwater.api.client import Target

    with AutomationClient(Target.resolve(url, TOKEN, None)) as client:
        firings = client.firings("rerun")
        explained = client.explain("rerun")  # the fifth event: counted, one short of the threshold
    assert len(firings) == 2 and all(f.finished is not None and f.error is None for f in firings)
    assert [b["counted"] for b in explained["buckets"]] == [1] and explained["buckets"][0]["threshold"] == 2
    assert len(explained["firings"]) == 2 and explained["firings"][0]["events"] == ["sales.table.refreshed"] * 2


def test_firings_and_actions_happen_exactly_once_across_a_killed_server(tmp_path: Path, server: Any) -> None:
    import signal

    from headwater.automations import Automation, EventTrigger, RunDeployment

    url, home, holder = server
    name = _deploy_report(tmp_path)
    Automation("each", EventTrigger(expect={"sales.table.refreshed"}), [RunDeployment(name, parameters={"rows": 1})]).create()
    _emit(3)
    # Kill the server at once: the events are stored; firings may or may not be, actions may be half done.
    holder["proc"].send_signal(signal.SIGKILL)
    holder["proc"].wait(10)
    port = url.rsplit(":", 1)[1]
    holder["proc"], _ = start_server_process(home, "--token", TOKEN, "--port", port)
    wait_for(lambda: len(_report_runs(url)) >= 3, 30, "three runs after the restart")
    time.sleep(2.0)
    assert len(_report_runs(url)) == 3  # one per event, none twice


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[str, dict[str, Any], str]] = []

    def do_POST(self) -> None:  # noqa: N802 - the standard library's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.got.append((self.path, json.loads(body), self.headers["Idempotency-Key"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_webhook_action_posts_its_templated_body(server: Any) -> None:
    from headwater.automations import Automation, CallWebhook, EventTrigger

    receiver = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        _Receiver.got.clear()
        Automation("hook", EventTrigger(expect={"sales.table.refreshed"}), [CallWebhook(
            f"http://127.0.0.1:{receiver.server_port}/notify",
            body={"text": "refreshed {{ event.payload.rows }} rows of {{ event.resource['headwater.resource.id'] }}"},
        )]).create()  # fmt: skip
        _emit(1, rows=1200)
        wait_for(lambda: len(_Receiver.got) == 1, 30, "the webhook")
        path, body, key = _Receiver.got[0]
        assert path == "/notify" and body == {"text": "refreshed 1200 rows of warehouse.sales"} and len(key) >= 32
    finally:
        receiver.shutdown()


def test_a_trigger_that_would_count_its_own_actions_is_refused(server: Any) -> None:
    from headwater.automations import Automation, DoNothing, EventTrigger

    with pytest.raises(StateServiceError, match="could fire itself forever"):
        Automation("loop", EventTrigger(), [DoNothing()]).create()


def test_a_proactive_trigger_fires_when_the_expected_event_does_not_come(server: Any) -> None:
    from headwater.api.automation_client import AutomationClient
    from headwater.api.client import Target
    from headwater.automations import Automation, DoNothing, EventTrigger

    url, _, _ = server
    Automation("sla", EventTrigger(expect={"sales.table.refreshed"}, posture="Proactive", within=1.5),
               [DoNothing()]).create()  # fmt: skip
    with AutomationClient(Target.resolve(url, TOKEN, None)) as client:
        wait_for(lambda: len(client.firings("sla")) >= 1, 20, "the missed window to fire")
        firing = client.firings("sla")[-1]
    assert firing.kind == "firing" and firing.body["window_end"] - firing.body["window_start"] >= 1.5


def test_a_dry_run_replays_the_stored_events_and_changes_nothing(server: Any) -> None:
    from headwater.automations import Automation, DoNothing, EventTrigger

    url, _, _ = server
    _emit(5)
    trial = Automation("try", EventTrigger(expect={"sales.table.refreshed"}, threshold=2, within=60), [DoNothing()])
    report = trial.dry_run(hours=1)
    assert report["events_read"] >= 5
    assert [o["kind"] for o in report["outcomes"]] == ["firing", "firing"]
    from headwater.api.automation_client import AutomationClient
    from headwater.api.client import Target

    with AutomationClient(Target.resolve(url, TOKEN, None)) as client:
        assert client.all() == []  # nothing was created


def test_a_deployment_trigger_runs_it_and_a_redeploy_keeps_or_drops_the_trigger(tmp_path: Path, server: Any) -> None:
    from headwater.api.automation_client import AutomationClient
    from headwater.api.client import Target
    from headwater.automations import EventTrigger
    from headwater.deploy.deployments import to_deployment
    from headwater.deploy.entrypoints import load_flow

    url, _, _ = server
    (tmp_path / "flows.py").write_text(FLOW)
    flow = load_flow(f"{tmp_path / 'flows.py'}:report")
    trigger = EventTrigger(expect={"sales.table.refreshed"})

    def apply(triggers: list[Any]) -> None:
        to_deployment(flow, "on-refresh", triggers=triggers, trigger_parameters={"rows": "{{ event.payload.rows }}"}).apply()

    apply([trigger])
    with AutomationClient(Target.resolve(url, TOKEN, None)) as client:
        (first,) = client.all()
        _emit(1, rows=42)
        wait_for(lambda: len(_report_runs(url)) == 1, 30, "the triggered run")
        assert _report_runs(url)[0].parameters == {"rows": 42}
        apply([trigger])  # unchanged: the same automation, its state kept
        assert [a.id for a in client.all()] == [first.id] and first.name == "report/on-refresh/trigger-0"
        apply([])  # no triggers any more
        assert client.all() == []


def test_a_deployment_deadline_fires_for_a_run_that_does_not_complete_in_time(tmp_path: Path, server: Any) -> None:
    from headwater import run_deployment
    from headwater.api.automation_client import AutomationClient
    from headwater.api.client import Target
    from headwater.deploy.deployments import to_deployment
    from headwater.deploy.entrypoints import load_flow

    url, _, _ = server
    (tmp_path / "flows.py").write_text(FLOW)
    dep = to_deployment(load_flow(f"{tmp_path / 'flows.py'}:report"), "late", deadline=1.0).apply()
    run = run_deployment(dep.name, parameters={"rows": 1}, timeout=0)  # no worker: it never completes
    with AutomationClient(Target.resolve(url, TOKEN, None)) as client:
        wait_for(lambda: len(client.firings(f"{dep.name}/deadline")) == 1, 20, "the deadline to fire")
        (firing,) = client.firings(f"{dep.name}/deadline")
    assert str(run.id) in firing.body["bucket"]
    to_deployment(load_flow(f"{tmp_path / 'flows.py'}:report"), "late").apply()  # no deadline any more
    with AutomationClient(Target.resolve(url, TOKEN, None)) as client:
        assert [a.name for a in client.all()] == []


def test_the_cli_reports_an_event_that_runs_a_deployment_with_templated_parameters(tmp_path: Path, server: Any) -> None:
    import os
    import subprocess

    from headwater.automations import Automation, EventTrigger, RunDeployment

    from ..cli.helpers import HEADWATER

    url, _, _ = server
    name = _deploy_report(tmp_path)
    Automation("from-cli", EventTrigger(expect={"dag.completed"}),
               [RunDeployment(name, parameters={"rows": "{{ event.payload.rows }}"})]).create()  # fmt: skip
    done = subprocess.run([*HEADWATER, "events", "emit", "dag.completed", "--resource", "id=airflow.dag.sales",
                           "--payload", '{"rows": 77}'], capture_output=True, text=True, env=dict(os.environ), timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(_report_runs(url)) == 1, 30, "the run")
    assert _report_runs(url)[0].parameters == {"rows": 77}


def test_a_failed_run_calls_a_webhook_exactly_once_across_a_server_restart(tmp_path: Path, server: Any) -> None:
    import signal

    from headwater import flow
    from headwater.automations import Automation, CallWebhook, EventTrigger

    url, home, holder = server
    receiver = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    _Receiver.got.clear()
    try:
        hook = CallWebhook(f"http://127.0.0.1:{receiver.server_port}/failed",
                           body={"text": "run {{ event.resource['headwater.resource.name'] }} failed"})  # fmt: skip
        Automation("on-failure", EventTrigger(expect={"headwater.flow-run.Failed"}), [hook], enabled=False).create()

        @flow(flow_run_name="doomed-run")
        def doomed() -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            doomed()  # its Failed state is stored on the server: the event
        holder["proc"].send_signal(signal.SIGKILL)  # the server dies between the event and any action
        holder["proc"].wait(10)
        reset_recorder()
        holder["proc"], _ = start_server_process(home, "--token", TOKEN, "--port", url.rsplit(":", 1)[1])
        from headwater.automations import Automation as Automations

        Automations.resume("on-failure")  # evaluated from where it was: the stored Failed event
        wait_for(lambda: len(_Receiver.got) == 1, 30, "the webhook")
        time.sleep(1.5)
        assert [(path, body) for path, body, _ in _Receiver.got] == [("/failed", {"text": "run doomed-run failed"})]
    finally:
        receiver.shutdown()


def test_a_proactive_sla_per_resource_fires_once_for_the_missed_one_and_not_for_the_met_one(server: Any) -> None:
    from headwater.api.automation_client import AutomationClient
    from headwater.api.client import Target
    from headwater.automations import Automation, DoNothing, EventTrigger
    from headwater.events import emit_event, flush_events

    url, _, _ = server
    Automation("daily-refresh", EventTrigger(
        posture="Proactive", after={"day.started"}, expect={"table.refreshed"}, within=1.5,
        for_each={"headwater.resource.id"},
    ), [DoNothing()]).create()  # fmt: skip
    for table in ("warehouse.sales", "warehouse.stock"):
        emit_event("day.started", resource={"headwater.resource.id": table})
    emit_event("table.refreshed", resource={"headwater.resource.id": "warehouse.sales"})  # sales meets it
    assert flush_events(10)
    with AutomationClient(Target.resolve(url, TOKEN, None)) as client:
        wait_for(lambda: len(client.firings("daily-refresh")) >= 1, 20, "the missed SLA")
        time.sleep(2.0)  # a window later: nothing more
        firings = [f for f in client.firings("daily-refresh") if f.kind == "firing"]
    assert len(firings) == 1 and "warehouse.stock" in firings[0].body["bucket"]
