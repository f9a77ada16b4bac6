"""Blocks through this test's embedded state service: every built-in round-trips, blocks
refer to blocks (and see them rotated), secrets are encrypted at rest, never shown, and a
document that no longer fits its class is caught by `check_documents()`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from headwater.api.block_client import block_client
from headwater.api.errors import BlockExists, BlockNotFound
from headwater.blocks import (
    JSON, Block, EmailServerCredentials, LocalFileSystem, RemoteFileSystem, Secret, SecretDict, SlackWebhook,
    check_documents,
)  # fmt: skip
from headwater.errors import BlockSchemaMismatch

from .conftest import home


def test_secret_text_and_json_round_trip() -> None:
    Secret(value="hunter2-password").save("db-password")
    loaded = Secret.load("db-password")
    assert loaded.get() == "hunter2-password"
    assert loaded.block_document_name == "db-password"
    Secret(value={"user": "etl", "token": "tok-12345", "port": 5432}).save("db")
    assert Secret.load("db").get() == {"user": "etl", "token": "tok-12345", "port": 5432}
    Secret(value=["a-list", 1]).save("listed")
    assert Secret.load("listed").get() == ["a-list", 1]


def test_json_and_both_filesystems_round_trip_and_read_and_write(tmp_path: Path) -> None:
    JSON(value={"batch": 500, "regions": ["eu", "us"], "on": True}).save("settings")
    assert JSON.load("settings").value == {"batch": 500, "regions": ["eu", "us"], "on": True}

    LocalFileSystem(basepath=str(tmp_path / "data")).save("local")
    local = LocalFileSystem.load("local")
    local.write_path("nested/one.bin", b"\x00payload")
    assert (tmp_path / "data" / "nested" / "one.bin").read_bytes() == b"\x00payload"
    assert local.read_path("nested/one.bin") == b"\x00payload"
    with pytest.raises(ValueError, match="outside the block's basepath"):
        local.read_path("../../etc/passwd")

    RemoteFileSystem(basepath="memory://bucket/prefix", settings={"skip_instance_cache": True}).save("remote")
    remote = RemoteFileSystem.load("remote")
    assert remote.settings.get_secret_value() == {"skip_instance_cache": True}
    remote.write_path("a/b.txt", b"remote bytes")
    assert remote.read_path("a/b.txt") == b"remote bytes"
    assert RemoteFileSystem.load("remote").read_path("/a/b.txt") == b"remote bytes"

    file_url = RemoteFileSystem(basepath=f"file://{tmp_path}/remote")
    file_url.write_path("x.txt", b"through file://")
    assert (tmp_path / "remote" / "x.txt").read_bytes() == b"through file://"


def test_notification_blocks_round_trip() -> None:
    SlackWebhook(url=SecretStr("https://hooks.example/T000/B000/xyzzy")).save("alerts")
    assert SlackWebhook.load("alerts").url.get_secret_value() == "https://hooks.example/T000/B000/xyzzy"
    EmailServerCredentials(
        username="bot", password=SecretStr("mail-pass-99"), smtp_server="mail.example", smtp_port=587,
        smtp_type="STARTTLS", to_addresses=["ops@example.org"],
    ).save("mail")  # fmt: skip
    mail = EmailServerCredentials.load("mail")
    assert (mail.username, mail.password.get_secret_value(), mail.smtp_type) == ("bot", "mail-pass-99", "STARTTLS")
    assert mail.to_addresses == ["ops@example.org"] and mail.from_address is None


def test_saving_again_needs_overwrite_and_delete_removes_it() -> None:
    block = JSON(value=1)
    first = block.save("n")
    with pytest.raises(BlockExists):
        JSON(value=2).save("n")
    assert JSON(value=2).save("n", overwrite=True) == first
    assert JSON.load("n").value == 2
    block.delete()
    assert block.block_document_name is None
    with pytest.raises(BlockNotFound):
        JSON.load("n")
    with pytest.raises(ValueError, match="never saved"):
        JSON(value=3).delete()


class ServiceCredentials(Block):
    username: str
    password: SecretStr


class ServiceConnection(Block):
    host: str
    credentials: ServiceCredentials


def test_a_block_refers_to_another_and_sees_it_rotated() -> None:
    ServiceCredentials(username="app", password=SecretStr("first-password")).save("creds")
    ServiceConnection(host="db.internal", credentials=ServiceCredentials.load("creds")).save("conn")
    with block_client() as client:
        stored = client.read_block("service-connection", "conn").data
    assert stored["credentials"] == {"$ref": {"type": "service-credentials", "name": "creds"}}

    ServiceCredentials(username="app", password=SecretStr("rotated-password")).save("creds", overwrite=True)
    conn = ServiceConnection.load("conn")
    assert conn.credentials.password.get_secret_value() == "rotated-password"
    assert conn.credentials.block_document_name == "creds"

    with pytest.raises(ValueError, match="never saved: save it first"):
        ServiceConnection(host="h", credentials=ServiceCredentials(username="u", password=SecretStr("p"))).save("x")
    ServiceCredentials.load("creds").delete()
    with pytest.raises(BlockNotFound):
        ServiceConnection.load("conn")


def test_secrets_are_encrypted_at_rest_and_never_shown() -> None:
    plaintexts = ["hunter2-password", "tok-12345-abc", "https://hooks.example/T000/B000/xyzzy", "mail-pass-99"]
    Secret(value=plaintexts[0]).save("a")
    RemoteFileSystem(basepath="memory://b", settings={"token": plaintexts[1]}).save("b")
    SlackWebhook(url=SecretStr(plaintexts[2])).save("c")
    EmailServerCredentials(password=SecretStr(plaintexts[3]), smtp_server="m", to_addresses=["x@y"]).save("d")
    files = [p for p in home().rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)
    for path in files:
        content = path.read_bytes()
        for plain in plaintexts:
            assert plain.encode() not in content, (path, plain)
    # The schema marks the secret fields; repr and dumps mask them.
    with block_client() as client:
        types = {t.slug: t.schema for t in client.list_types()}
    assert types["slack-webhook"]["properties"]["url"]["secret"] is True
    assert types["remote-file-system"]["properties"]["settings"]["secret"] is True
    assert types["secret"]["properties"]["value"]["secret"] is True
    remote = RemoteFileSystem.load("b")
    shown = [repr(remote), str(remote), str(remote.model_dump()), remote.model_dump_json(), repr(SecretDict({"k": "abcdef"}))]
    for text in shown:
        assert plaintexts[1] not in text and "abcdef" not in text
    assert "'token': '**********'" in repr(remote)
    assert plaintexts[0] not in repr(Secret.load("a")) + Secret.load("a").model_dump_json()


def test_schema_drift_is_caught_by_check_and_by_load() -> None:
    class Endpoint(Block):
        _block_type_slug = "drift-endpoint"
        url: str

    Endpoint(url="https://api.example").save("prod")
    JSON(value=1).save("fine")
    with block_client() as client:
        client.save_block("ghost-type", "orphan", {"x": 1})
    assert [(p.type_slug, p.name) for p in check_documents()] == [("ghost-type", "orphan")]

    class EndpointV2(Block):  # the same type, redefined with a new required field
        _block_type_slug = "drift-endpoint"
        _block_schema_version = "2"
        url: str
        timeout_seconds: int

    problems = {(p.type_slug, p.name): p for p in check_documents()}
    assert set(problems) == {("drift-endpoint", "prod"), ("ghost-type", "orphan")}
    assert problems[("drift-endpoint", "prod")].details == ("timeout_seconds: Field required",)
    assert "no class for block type 'ghost-type'" in problems[("ghost-type", "orphan")].message
    with pytest.raises(BlockSchemaMismatch, match="no longer fits the class .*EndpointV2.*timeout_seconds: Field required") as caught:
        EndpointV2.load("prod")
    assert caught.value.problems == ["timeout_seconds: Field required"]
