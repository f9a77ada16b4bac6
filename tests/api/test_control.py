"""The control channel and the cancel path with a real server on 127.0.0.1:0 and real SQLite:
delivery after a reconnect exactly once, refusals, the deadline, and no forced CANCELLED."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from headwater.api import StateClient, StateServer, TransitionRejected
from headwater.api.client import Target
from headwater.api.control_client import ControlClient
from headwater.api.control_store import ControlMessage, ControlStore
from headwater.api.records import FlowRunRecord
from headwater.api.settings import DB_FILENAME

from .conftest import TOKEN
from .helpers import flow, state


def _running_flow(client: StateClient, parent: uuid.UUID | None = None) -> FlowRunRecord:
    run = flow() if parent is None else flow(parent_flow_run_id=parent)
    client.create_flow_run(run)
    client.set_state(state(run.id, "PENDING"))
    client.set_state(state(run.id, "RUNNING"))
    return run


def _server(home: Path, port: int = 0) -> StateServer:
    srv = StateServer(home, port=port, token=TOKEN, heartbeat_timeout=1.0, heartbeat_interval=0.25,
                      synchronous="NORMAL")
    srv.start()
    return srv


def test_a_message_missed_while_the_server_was_down_arrives_once_after_reconnect(home: Path) -> None:
    srv = _server(home)
    port = srv.port
    got: list[ControlMessage] = []
    arrived = threading.Event()
    with StateClient(srv.url, token=TOKEN) as client:
        run = _running_flow(client)
    control = ControlClient(Target.resolve(srv.url, TOKEN, None), retry_for=5.0)
    control.watch(run.id, lambda m: (got.append(m), arrived.set()))
    assert control.connected.wait(2)
    srv.stop(0.2)
    store = ControlStore(home / DB_FILENAME)  # the cancel is written while nothing serves
    store.request_cancel(run.id, deadline_seconds=30)
    store.close()
    srv = _server(home, port)  # the client reconnects by itself and catches up
    try:
        assert arrived.wait(4), "the missed message never arrived"
        assert [m.kind for m in got] == ["cancel"]
        control._call_in_flight.cancel()  # drop the stream once more: nothing is acted on twice
        time.sleep(0.3)
        assert control.connected.wait(3)
        time.sleep(0.2)
        assert len(got) == 1
    finally:
        control.close()
        srv.stop(0.2)


def test_a_lower_seq_still_pending_at_a_reconnect_is_not_skipped(home: Path) -> None:
    """Run A's cancel is written straight into the database (seq 1: it waits for the sweeper),
    run B's goes through the server and is acted on at once (seq 2); the stream breaks before
    the sweeper's turn. Reconnecting after seq 2 must not skip seq 1."""
    srv = _server(home)
    got: list[ControlMessage] = []
    with StateClient(srv.url, token=TOKEN) as client:
        run_a, run_b = _running_flow(client), _running_flow(client)
    control = ControlClient(Target.resolve(srv.url, TOKEN, None), retry_for=5.0)
    acted_on_b = threading.Event()
    control.watch(run_a.id, got.append)
    control.watch(run_b.id, lambda m: (got.append(m), acted_on_b.set()))
    try:
        assert control.connected.wait(2)
        store = ControlStore(home / DB_FILENAME)
        store.request_cancel(run_a.id, deadline_seconds=30)  # no doorbell rung, no push
        store.close()
        control.cancel_flow_run(run_b.id, deadline_seconds=30)
        assert acted_on_b.wait(2)
        control._call_in_flight.cancel()  # break the stream: it reconnects having acted on seq 2
        give_up = time.time() + 4
        while len(got) < 2 and time.time() < give_up:
            time.sleep(0.01)
        time.sleep(0.3)  # and once more, nothing is acted on twice
        assert sorted(str(m.flow_run_id) for m in got) == sorted([str(run_a.id), str(run_b.id)])
    finally:
        control.close()
        srv.stop(0.2)


def test_a_server_given_a_stopped_servers_port_gets_a_client_of_its_own(tmp_path: Path) -> None:
    """An embedded server started after another stopped may be given the same port. This
    process's control client for the new one must carry the new token, not be the old one's."""
    from headwater.api.control_client import close_control_clients, control_client

    first = StateServer(tmp_path / "a", port=0, token="first-token", synchronous="NORMAL")
    first.start()
    port = first.port
    with StateClient(first.url, token="first-token") as client:
        run = _running_flow(client)
    control_client(Target.resolve(first.url, "first-token", None)).watch(run.id, lambda m: None)
    first.stop(0.2)
    second = StateServer(tmp_path / "b", port=port, token="second-token", synchronous="NORMAL")
    second.start()
    try:
        assert second.url == first.url
        with StateClient(second.url, token="second-token") as client:
            run = _running_flow(client)
        control = control_client(Target.resolve(second.url, "second-token", None))
        control.watch(run.id, lambda m: None)  # refused as UNAUTHENTICATED with the old token
        assert control.connected.wait(3)
    finally:
        close_control_clients()
        second.stop(0.2)


def test_cancel_moves_the_run_and_its_subflows_and_a_finished_run_is_refused(server: StateServer) -> None:
    with StateClient(server.url, token=TOKEN) as client, ControlClient(Target.resolve(server.url, TOKEN, None)) as control:
        parent = _running_flow(client)
        child = _running_flow(client, parent.id)
        request = control.cancel_flow_run(parent.id, deadline_seconds=30)
        assert set(request.cancelled) == {parent.id, child.id} and not request.already
        assert client.read_flow_run(child.id).state_type == "CANCELLING"
        assert control.cancel_flow_run(parent.id).already
        done = _running_flow(client)
        client.set_state(state(done.id, "COMPLETED"))
        with pytest.raises(TransitionRejected, match="already finished"):
            control.cancel_flow_run(done.id)


def test_a_forced_state_cannot_mark_a_running_flow_run_cancelled(client: StateClient) -> None:
    run = _running_flow(client)
    with pytest.raises(TransitionRejected, match="runs cancel"):
        client.set_state(state(run.id, "CANCELLED"))
    assert client.read_flow_run(run.id).state_type == "RUNNING"


def test_the_service_ends_a_run_whose_process_does_not_answer_by_the_deadline(server: StateServer) -> None:
    with StateClient(server.url, token=TOKEN) as client, ControlClient(Target.resolve(server.url, TOKEN, None)) as control:
        run = _running_flow(client)
        control.cancel_flow_run(run.id, deadline_seconds=0.3)
        give_up = time.time() + 3
        while client.read_flow_run(run.id).state_type != "CANCELLED" and time.time() < give_up:
            time.sleep(0.05)
        assert client.read_flow_run(run.id).state_type == "CANCELLED"
        assert "did not acknowledge" in (client.read_history(run.id)[-1].message or "")
        # The process waking up later cannot revive it.
        with pytest.raises(TransitionRejected):
            client.set_state(state(run.id, "COMPLETED"))
