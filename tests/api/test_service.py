"""The gRPC service end to end: a real server on 127.0.0.1:0, real SQLite, real clients."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import grpc
import msgpack
import pytest

from headwater.api import (
    AsyncStateClient,
    RunFilter,
    RunNotFound,
    ServerConfigError,
    StateClient,
    StateServer,
    TransitionRejected,
    Unauthenticated,
)
from headwater.api.service import method_path

from .conftest import TOKEN
from .helpers import flow, state, task


def test_create_set_and_read_a_flow_run(client: StateClient) -> None:
    run = flow(tags=("nightly",))
    client.create_flow_run(run)
    for type_ in ("PENDING", "RUNNING", "COMPLETED"):
        assert client.set_state(state(run.id, type_)) is True
    info = client.read_flow_run(run.id)
    assert (info.name, info.flow_name, info.tags, info.parameters) == ("demo-run", "demo", ("nightly",), {"x": 1})
    assert (info.state_type, info.state_name) == ("COMPLETED", "Completed")
    assert info.start_time is not None and info.end_time is not None
    assert [s.type for s in client.read_history(run.id)] == ["PENDING", "RUNNING", "COMPLETED"]


def test_task_runs_keep_their_upstream_lineage(client: StateClient) -> None:
    run = flow()
    client.create_flow_run(run)
    a = task(run.id, "load")
    b = task(run.id, "sum", upstream={"rows": (a.id,)})
    client.create_task_run(a)
    client.create_task_run(b)
    client.set_state(state(b.id, "PENDING", "task"))
    runs = client.list_task_runs(run.id)
    assert [r.task_name for r in runs] == ["load", "sum"]
    assert runs[1].upstream == {"rows": (a.id,)} and runs[1].state_type == "PENDING"
    assert client.read_task_run(str(b.id)[:8]).id == b.id
    assert client.read_flow_run(run.id).task_run_count == 2


def test_where_a_run_ran_travels_both_ways(server: StateServer, client: StateClient) -> None:
    """Host and pid go in with a unary create or a recorder batch and come back on reads; a
    batch row from a client before them (no host, pid, moved) is still taken."""
    from headwater.api import codec
    from headwater.api.client import Target
    from headwater.api.recorder import Recorder, _GrpcSink
    from headwater.api.records import Batch

    run = flow(host="flow-host", pid=11)
    client.create_flow_run(run)
    made = task(run.id, host="flow-host", pid=11)
    client.create_task_run(made)
    client.create_task_run(made._replace(host="worker", pid=22, moved=True))
    info = client.read_flow_run(run.id)
    assert (info.host, info.pid) == ("flow-host", 11)
    [listed] = client.list_task_runs(run.id)
    read = client.read_task_run(made.id)
    assert (listed.host, listed.pid) == (read.host, read.pid) == ("worker", 22)

    recorder = Recorder(_GrpcSink(Target.resolve(server.url, TOKEN, None)))
    try:
        batched = task(run.id, "batched", host="worker", pid=33, moved=True)
        recorder.task_run_created(batched)
        recorder.task_run_created(batched._replace(host="flow-host", pid=11, moved=False))
        recorder.flush(timeout=10)
    finally:
        recorder.close(timeout=5)
    assert client.read_task_run(batched.id).pid == 33

    old_flow, old_task = flow(), task(None)
    rows = msgpack.unpackb(codec.batch_body(0, Batch((old_flow,), (old_task,))))
    rows[1][0], rows[2][0] = rows[1][0][:8], rows[2][0][:7]  # as a client before schema v4
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary(method_path("RecordBatch"))
        call(msgpack.packb(rows), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
    assert client.read_flow_run(old_flow.id).pid is None and client.read_task_run(old_task.id).host is None


def test_illegal_transition_is_rejected_naming_run_from_and_to(client: StateClient) -> None:
    run = flow()
    client.create_flow_run(run)
    client.set_state(state(run.id, "RUNNING"))
    client.set_state(state(run.id, "COMPLETED"))
    with pytest.raises(TransitionRejected) as err:
        client.set_state(state(run.id, "RUNNING"))
    assert str(run.id) in str(err.value) and "COMPLETED -> RUNNING" in str(err.value)
    assert client.read_flow_run(run.id).state_type == "COMPLETED"


def test_explicit_retry_leaves_failed(client: StateClient) -> None:
    run = flow()
    client.set_state(state(run.id, "RUNNING"))
    client.set_state(state(run.id, "FAILED"))
    with pytest.raises(TransitionRejected):
        client.set_state(state(run.id, "SCHEDULED", name="AwaitingRetry"))
    client.set_state(state(run.id, "SCHEDULED", name="AwaitingRetry", retry=True))
    info = client.read_flow_run(run.id)
    assert (info.state_type, info.state_name, info.end_time) == ("SCHEDULED", "AwaitingRetry", None)


def test_a_retried_call_is_idempotent(client: StateClient) -> None:
    run = flow()
    client.create_flow_run(run)
    client.create_flow_run(run)  # create is idempotent too
    running = state(run.id, "RUNNING")
    assert client.set_state(running) is True
    assert client.set_state(running) is False  # same transition id: recorded once
    assert len(client.read_history(run.id)) == 1
    assert len(client.list_flow_runs()) == 1


def test_state_before_its_run_record_still_works(client: StateClient) -> None:
    run = flow()
    client.set_state(state(run.id, "RUNNING"))  # another process's create has not arrived yet
    client.create_flow_run(run)
    info = client.read_flow_run(run.id)
    assert (info.flow_name, info.state_type) == ("demo", "RUNNING")


def test_list_filters(client: StateClient) -> None:
    a, b = flow("alpha"), flow("beta")
    for r in (a, b):
        client.create_flow_run(r)
    client.set_state(state(a.id, "RUNNING"))
    assert [r.id for r in client.list_flow_runs(RunFilter(flow_name="beta"))] == [b.id]
    assert [r.id for r in client.list_flow_runs(RunFilter(state_type="RUNNING"))] == [a.id]
    assert len(client.list_flow_runs(RunFilter(limit=1))) == 1


def test_unknown_run_is_not_found(client: StateClient) -> None:
    with pytest.raises(RunNotFound):
        client.read_flow_run(uuid.uuid4())


@pytest.mark.parametrize("token", [None, "wrong"])
def test_bad_or_missing_token_is_unauthenticated(server: StateServer, token: str | None) -> None:
    with StateClient(server.url, token=token or "", retry_for=0) as c:
        with pytest.raises(Unauthenticated, match="bearer token"):
            c.list_flow_runs()


def test_refuses_to_listen_beyond_loopback_without_a_token(home: Path) -> None:
    with pytest.raises(ServerConfigError, match="without a token"):
        StateServer(home, host="0.0.0.0", port=0)


def _raw(server: StateServer, method: str, body: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary(method_path(method))
        with pytest.raises(grpc.RpcError) as err:
            call(body, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
    return err.value


def _good_state() -> dict[str, Any]:
    return {"run_id": uuid.uuid4().bytes, "run_kind": "flow", "type": "RUNNING", "name": "Running",
            "message": None, "timestamp": 1.0, "transition_id": uuid.uuid4().bytes}  # fmt: skip


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = [
    ("garbage bytes", "SetState", b"\xc1\xc1\xff\x00garbage", grpc.StatusCode.INVALID_ARGUMENT, "msgpack"),
    ("not a map", "SetState", msgpack.packb([1, 2, 3]), grpc.StatusCode.INVALID_ARGUMENT, "expected a map"),
    ("wrong type", "SetState", msgpack.packb({**_good_state(), "run_id": "abc"}), grpc.StatusCode.INVALID_ARGUMENT, "run_id"),
    ("unknown field", "SetState", msgpack.packb({**_good_state(), "evil": 1}), grpc.StatusCode.INVALID_ARGUMENT, "evil"),
    ("bad kind", "SetState", msgpack.packb({**_good_state(), "run_kind": "job"}), grpc.StatusCode.INVALID_ARGUMENT, "run_kind"),
    ("deep parameters", "CreateFlowRun", msgpack.packb({"id": uuid.uuid4().bytes, "name": "n", "flow_name": "f", "parameters": {"p": _nested(40)}}), grpc.StatusCode.INVALID_ARGUMENT, "nested deeper"),
    ("deep body", "ListFlowRuns", b"\x91" * 5000 + b"\x90", grpc.StatusCode.INVALID_ARGUMENT, "deep"),
    ("long name", "CreateFlowRun", msgpack.packb({"id": uuid.uuid4().bytes, "name": "n" * 5000, "flow_name": "f"}), grpc.StatusCode.INVALID_ARGUMENT, "name"),
    ("oversized body", "SetState", msgpack.packb({"x": b"\0" * (2 << 20)}), grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
    ("over grpc limit", "SetState", b"\0" * (17 << 20), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    ("bad batch", "Record", b"", grpc.StatusCode.INVALID_ARGUMENT, ""),
]  # fmt: skip


@pytest.mark.parametrize(("what", "method", "body", "code", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_payloads_get_a_status_and_the_server_keeps_serving(
    server: StateServer, client: StateClient, what: str, method: str, body: bytes, code: grpc.StatusCode, words: str
) -> None:
    if method == "Record":
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = channel.stream_stream(method_path("Record"))
            frames = iter([msgpack.packb([0, [["x"]], [], [], []]), b"junk"])
            with pytest.raises(grpc.RpcError) as err:
                list(call(frames, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10))
            error = err.value
    else:
        error = _raw(server, method, body)
    assert error.code() == code, error.details()  # type: ignore[attr-defined]
    assert words.lower() in (error.details() or "").lower()  # type: ignore[attr-defined]
    run = flow()
    client.create_flow_run(run)
    assert client.read_flow_run(run.id).id == run.id


def test_async_client_has_the_same_methods(server: StateServer) -> None:
    async def main() -> None:
        async with AsyncStateClient(server.url, token=TOKEN) as c:
            run = flow()
            await c.create_flow_run(run)
            assert await c.set_state(state(run.id, "RUNNING"))
            with pytest.raises(TransitionRejected):
                await c.set_state(state(run.id, "PENDING"))
            assert (await c.read_flow_run(run.id)).state_type == "RUNNING"
            assert [r.id for r in await c.list_flow_runs()] == [run.id]
            assert len(await c.read_history(run.id)) == 1
            await c.heartbeat(run.id)

    anyio.run(main, backend="asyncio")
    sync, async_ = set(dir(StateClient)), set(dir(AsyncStateClient))
    public = {n for n in sync if not n.startswith("_")} - {"close"}
    assert public <= async_


def test_tls_with_a_self_signed_certificate(home: Path, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    srv = StateServer(home, port=0, token=TOKEN, tls_cert=cert, tls_key=key)
    url = srv.start()
    try:
        assert url.startswith("grpcs://")
        with StateClient(url.replace("127.0.0.1", "localhost"), token=TOKEN, tls_ca=cert) as c:
            run = flow()
            c.create_flow_run(run)
            assert c.read_flow_run(run.id).id == run.id
    finally:
        srv.stop(0.5)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    pytest.importorskip("cryptography")
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path
