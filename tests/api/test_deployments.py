"""Deployments, pools and claims through a real server on 127.0.0.1 (`deploy_service.py`,
`deploy_store.py`): parameters checked against the stored schema, idempotency keys, limits
counted from claims, fencing by token, leases given back or crashed by the sweeper."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from headwater.api import StateServer
from headwater.api.deploy_client import DeployClient, stream_item
from headwater.api.deploy_store import Assignment, DeploymentSpec
from headwater.api.errors import ClaimLost, DeploymentNotFound, InvalidParameters, WorkPoolExists, WorkPoolNotFound

from .conftest import TOKEN

SCHEMA = {
    "type": "object", "title": "Parameters",
    "properties": {"n": {"type": "integer", "title": "N"}, "label": {"type": "string", "default": "x"}},
    "required": ["n"],
}  # fmt: skip


def _spec(name: str = "f/nightly", pool: str | None = "pool-a", **kw: Any) -> DeploymentSpec:
    return DeploymentSpec(
        name=name, flow_name="f", entrypoint="flows.py:f", source={"kind": "local", "path": "/tmp"},
        parameters=kw.pop("parameters", {"label": "default"}), parameter_schema=SCHEMA, work_pool=pool, **kw,
    )


@pytest.fixture
def deploy(server: StateServer) -> Iterator[DeployClient]:
    with DeployClient(_target(server), retry_for=2.0) as client:
        yield client


def _target(server: StateServer) -> Any:
    from headwater.api.client import Target

    return Target.resolve(server.url, TOKEN, None)


def test_a_deployment_round_trips_and_an_update_keeps_its_id(deploy: DeployClient) -> None:
    deploy.create_pool("pool-a", concurrency_limit=3)
    with pytest.raises(WorkPoolExists, match="exists already"):
        deploy.create_pool("pool-a")
    first = deploy.upsert_deployment(_spec(tags=("etl",)))
    again = deploy.upsert_deployment(_spec(version="2"))
    assert again.id == first.id and again.version == "2" and deploy.read_deployment("f/nightly").version == "2"
    assert deploy.read_deployment(str(first.id)).name == "f/nightly"
    assert [d.name for d in deploy.list_deployments()] == ["f/nightly"]
    with pytest.raises(WorkPoolNotFound, match="work-pool create nope"):
        deploy.upsert_deployment(_spec(name="f/other", pool="nope"))
    with pytest.raises(DeploymentNotFound, match="deployment ls"):
        deploy.read_deployment("f/missing")


def test_bad_parameters_are_refused_naming_the_field(deploy: DeployClient) -> None:
    deploy.create_pool("pool-a")
    deploy.upsert_deployment(_spec())
    with pytest.raises(InvalidParameters, match="parameter 'n': 'seven' is not of type 'integer'"):
        deploy.create_run("f/nightly", name="r", parameters={"n": "seven"})
    with pytest.raises(InvalidParameters, match="'bogus' is not a parameter of flow 'f'"):
        deploy.create_run("f/nightly", name="r", parameters={"n": 1, "bogus": 2})
    with pytest.raises(InvalidParameters, match="missing parameter: 'n' is a required property"):
        deploy.create_run("f/nightly", name="r")
    with pytest.raises(InvalidParameters, match="default parameters are invalid"):
        deploy.upsert_deployment(_spec(parameters={"n": "x"}))


def test_the_same_idempotency_key_never_creates_a_second_run(deploy: DeployClient, server: StateServer) -> None:
    deploy.create_pool("pool-a")
    deploy.upsert_deployment(_spec())
    first = deploy.create_run("f/nightly", name="r1", parameters={"n": 1}, idempotency_key="order-17")
    racers: list[Any] = []
    threads = [
        threading.Thread(target=lambda: racers.append(
            deploy.create_run("f/nightly", name="r2", parameters={"n": 1}, idempotency_key="order-17")))
        for _ in range(8)
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert first.created and all(not r.created and r.flow_run_id == first.flow_run_id for r in racers)
    other = deploy.create_run("f/nightly", name="r3", parameters={"n": 1}, idempotency_key="order-18")
    assert other.created and other.flow_run_id != first.flow_run_id
    assert server.storage is not None
    info = server.storage.read_flow_run(first.flow_run_id)
    assert info.state_type == "SCHEDULED" and info.parameters == {"n": 1, "label": "default"}


def _store(server: StateServer) -> Any:
    assert server._service is not None
    return server._service.deployments.store


def test_limits_count_claims_and_a_blocked_run_does_not_hold_up_others(deploy: DeployClient, server: StateServer) -> None:
    store = _store(server)
    deploy.create_pool("pool-a", concurrency_limit=3)
    deploy.upsert_deployment(_spec(name="f/limited", concurrency_limit=1))
    deploy.upsert_deployment(_spec(name="f/free"))
    limited = [deploy.create_run("f/limited", name=f"l{i}", parameters={"n": i}).flow_run_id for i in range(2)]
    free = [deploy.create_run("f/free", name=f"f{i}", parameters={"n": i}).flow_run_id for i in range(4)]
    store.register_worker("w1", pool="pool-a", limit=10)
    taken = store.assign("w1", most=10)
    ids = [a.flow_run_id for a in taken]
    assert len(ids) == 3  # the pool's limit
    assert ids[0] == limited[0] and limited[1] not in ids and ids[1:] == free[:2]  # the blocked run was passed over
    assert store.assign("w1", most=10) == []
    deploy.start_run(taken[1].flow_run_id, taken[1].token, "w1")
    store.release(taken[1].flow_run_id, taken[1].token)  # its process ended: room for one more
    assert [a.flow_run_id for a in store.assign("w1", most=10)] == [free[2]]


def test_cancel_new_ends_a_run_over_its_deployments_limit(deploy: DeployClient, server: StateServer) -> None:
    store = _store(server)
    deploy.create_pool("pool-a")
    deploy.upsert_deployment(_spec(concurrency_limit=1, collision_strategy="cancel_new"))
    runs = [deploy.create_run("f/nightly", name=f"r{i}", parameters={"n": i}).flow_run_id for i in range(2)]
    store.register_worker("w1", pool="pool-a")
    assert [a.flow_run_id for a in store.assign("w1", most=5)] == [runs[0]]
    assert server.storage is not None
    late = server.storage.read_flow_run(runs[1])
    assert late.state_type == "CANCELLED"
    assert "collision strategy is cancel_new" in (server.storage.read_history(runs[1])[-1].message or "")


def test_a_claim_is_fenced_by_its_token_and_an_expired_one_goes_back(deploy: DeployClient, server: StateServer) -> None:
    store = _store(server)
    deploy.create_pool("pool-a")
    deploy.upsert_deployment(_spec())
    run = deploy.create_run("f/nightly", name="r", parameters={"n": 1}).flow_run_id
    store.register_worker("slow", pool="pool-a")
    store.register_worker("fast", pool="pool-a")
    now = time.time()
    (a,) = store.assign("slow", lease=0.1, now=now)
    assert store.sweep(now=now + 1).returned == (run,)  # slow never started it: back in the queue
    (b,) = store.assign("fast", now=now + 1)
    assert b.token > a.token
    with pytest.raises(ClaimLost):
        deploy.start_run(run, a.token, "slow")  # the late worker changes nothing
    deploy.start_run(run, b.token, "fast")
    deploy.start_run(run, b.token, "fast")  # a retried call is fine
    assert server.storage is not None and server.storage.read_flow_run(run).state_type == "PENDING"
    # fast stops heartbeating: its started run ends CRASHED
    result = store.sweep(now=time.time() + 60)
    assert result.crashed == (run,)
    assert server.storage.read_flow_run(run).state_type == "CRASHED"


def test_a_worker_stream_gets_a_run_pushed_when_it_is_created(deploy: DeployClient) -> None:
    deploy.create_pool("pool-a")
    deploy.upsert_deployment(_spec())
    call = deploy.worker_stream("w1", pool="pool-a", host="h", pid=1)
    items = iter(call)
    assert stream_item(next(items))[0] == "ready"
    started = time.monotonic()
    run = deploy.create_run("f/nightly", name="r", parameters={"n": 5})
    kind, assignment = stream_item(next(items))
    elapsed = time.monotonic() - started
    call.cancel()
    assert kind == "run" and isinstance(assignment, Assignment)
    assert assignment.flow_run_id == run.flow_run_id and assignment.parameters == {"n": 5, "label": "default"}
    assert assignment.deployment.entrypoint == "flows.py:f" and elapsed < 1.0
    (worker,) = deploy.list_workers()
    assert worker.name == "w1" and worker.pool == "pool-a"


def test_a_deleted_deployments_queued_runs_end_cancelled(deploy: DeployClient, server: StateServer) -> None:
    deploy.create_pool("pool-a")
    deploy.upsert_deployment(_spec())
    run = deploy.create_run("f/nightly", name="r", parameters={"n": 1}).flow_run_id
    with pytest.raises(Exception, match="used by 1 deployment"):
        deploy.delete_pool("pool-a")
    assert deploy.delete_deployment("f/nightly") == [run]
    assert server.storage is not None and server.storage.read_flow_run(run).state_type == "CANCELLED"
    deploy.delete_pool("pool-a")
    assert deploy.list_pools() == []
    assert uuid.UUID(int=0) != run
