"""The send-notification action end to end: a real `headwater server start` loads the named
notification block with its own key and sends the templated message to receivers started
here (an HTTP server standing in for Slack, an aiosmtpd inbox); a rotated block is used at
once; a server without the key, or a block that cannot notify, records why and retries."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from headwater.api.automation_client import AutomationClient
from headwater.api.client import Target
from headwater.api.errors import StateServiceError

from ..api.helpers import start_server_process, stop_process
from ..blocks.receivers import Inbox, Receiver, free_port, receiver  # noqa: F401 - receiver is a fixture
from ..deploy.helpers import wait_for
from .helpers import TOKEN, server  # noqa: F401 - server is a fixture


def _emit(rows: int) -> None:
    from headwater.events import emit_event, flush_events

    emit_event("sales.table.refreshed", resource={"headwater.resource.id": "warehouse.sales"}, payload={"rows": rows})
    assert flush_events(30)


def _firings(url: str, name: str) -> list[Any]:
    with AutomationClient(Target.resolve(url, TOKEN, None)) as client:
        return client.firings(name)


def test_a_slack_block_gets_the_templated_message_and_a_rotated_url_at_once(server: Any, receiver: Receiver) -> None:
    from headwater.automations import Automation, EventTrigger, SendNotification
    from headwater.blocks import SlackWebhook

    url, _, _ = server
    SlackWebhook(url=SecretStr(receiver.url + "/old")).save("ops")
    Automation("tell-ops", EventTrigger(expect={"sales.table.refreshed"}), [SendNotification(
        SlackWebhook.load("ops"), body="refreshed {{ event.payload.rows }} rows of {{ event.resource['headwater.resource.id'] }}",
        subject="{{ automation.name }}",
    )]).create()  # fmt: skip
    SlackWebhook(url=SecretStr(receiver.url)).save("ops", overwrite=True)  # rotated after the automation was made
    _emit(1200)
    wait_for(lambda: len(receiver.bodies) == 1, 30, "the notification")
    assert receiver.bodies == [{"text": "*tell-ops*\nrefreshed 1200 rows of warehouse.sales"}]
    (firing,) = _firings(url, "tell-ops")
    assert firing.finished is not None and firing.error is None


def test_an_email_block_sends_through_the_smtp_server(server: Any) -> None:
    from headwater.automations import Automation, EventTrigger, SendNotification
    from headwater.blocks import EmailServerCredentials

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        EmailServerCredentials(smtp_server="127.0.0.1", smtp_port=port, smtp_type="INSECURE",
                               from_address="headwater@example.org", to_addresses=["oncall@example.org"]).save("oncall")  # fmt: skip
        Automation("mail-oncall", EventTrigger(expect={"sales.table.refreshed"}), [SendNotification(
            "email-server-credentials/oncall", body="{{ event.payload.rows }} rows refreshed",
        )]).create()  # fmt: skip
        _emit(7)
        wait_for(lambda: len(inbox.messages) == 1, 30, "the mail")
    finally:
        controller.stop()
    ((sender, recipients, content),) = inbox.messages
    message = message_from_bytes(content)
    assert sender == "headwater@example.org" and recipients == ["oncall@example.org"]
    assert message["Subject"] == "headwater automation mail-oncall fired"  # the default subject, rendered
    assert "7 rows refreshed" in str(message.get_payload())


def test_a_server_without_the_key_records_why_and_sends_once_it_has_it(tmp_path: Path, receiver: Receiver,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    from headwater.api import reset_recorder
    from headwater.automations import Automation, EventTrigger, SendNotification
    from headwater.blocks import SlackWebhook

    home = tmp_path / "server-home"
    proc, url = start_server_process(home, "--token", TOKEN, env={"HEADWATER_SECRET_KEY": Fernet.generate_key().decode()})
    monkeypatch.setenv("HEADWATER_API_URL", url)
    monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
    reset_recorder()
    try:
        SlackWebhook(url=SecretStr(receiver.url)).save("ops")  # under this process's key, not the server's
        Automation("tell-ops", EventTrigger(expect={"sales.table.refreshed"}),
                   [SendNotification("slack-webhook/ops", body="{{ event.payload.rows }}")]).create()  # fmt: skip
        _emit(5)
        wait_for(lambda: any(f.error for f in _firings(url, "tell-ops")), 30, "the failed attempt")
        (firing,) = _firings(url, "tell-ops")
        assert "block 'slack-webhook/ops', field 'url' does not decrypt with the key in use (HEADWATER_SECRET_KEY)" in firing.error
        assert firing.finished is None and receiver.bodies == []  # kept, to be retried
        assert "hook-secret" not in firing.error
        # The server restarted with the right key (the key file this process saved with) sends it.
        stop_process(proc)
        port = url.rsplit(":", 1)[1]
        proc, _ = start_server_process(home, "--token", TOKEN, "--port", port, env={"HEADWATER_SECRET_KEY": ""})
        wait_for(lambda: receiver.bodies == [{"text": "*headwater automation tell-ops fired*\n5"}], 30, "the retried notification")
    finally:
        reset_recorder()
        stop_process(proc)


def test_a_block_that_cannot_notify_and_a_malformed_reference_are_named(server: Any) -> None:
    from headwater.automations import Automation, EventTrigger, SendNotification
    from headwater.blocks import JSON

    url, _, _ = server
    JSON(value={"a": 1}).save("settings")
    Automation("bad", EventTrigger(expect={"sales.table.refreshed"}), [SendNotification("json/settings", body="x")]).create()
    _emit(1)
    wait_for(lambda: any(f.error for f in _firings(url, "bad")), 30, "the failed attempt")
    assert "block 'json/settings' is a JSON, which cannot send notifications" in _firings(url, "bad")[0].error
    with pytest.raises(StateServiceError, match="needs 'block' as 'type-slug/name'"):
        Automation("worse", EventTrigger(expect={"x"}), [SendNotification("ops", body="x")]).create()
    with pytest.raises(ValueError, match="never saved"):
        SendNotification(JSON(value=1), body="x")
