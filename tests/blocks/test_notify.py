"""Notification blocks deliver to real receivers started here: an HTTP server on 127.0.0.1
(a Slack webhook stand-in) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from headwater.blocks import EmailServerCredentials, SlackWebhook
from headwater.errors import NotificationFailed

from .receivers import Inbox, Receiver, free_port, receiver  # noqa: F401 - receiver is a fixture


def test_slack_webhook_posts_its_text_to_the_receiver(receiver: Receiver) -> None:
    SlackWebhook(url=SecretStr(receiver.url)).save("alerts")
    SlackWebhook.load("alerts").notify("the nightly load finished", subject="etl")
    assert receiver.bodies == [{"text": "*etl*\nthe nightly load finished"}]
    SlackWebhook.load("alerts").notify("plain")
    assert receiver.bodies[-1] == {"text": "plain"}


def test_an_error_status_raises_notification_failed_without_the_url(receiver: Receiver) -> None:
    receiver.status = 500
    SlackWebhook(url=SecretStr(receiver.url)).save("alerts")
    with pytest.raises(NotificationFailed) as caught:
        SlackWebhook.load("alerts").notify("boom")
    message = str(caught.value)
    assert "answered HTTP 500: internal error: xxx" in message and "'alerts'" in message
    assert len(message.split(": ", 1)[1]) <= 200 and "hook-secret" not in message
    receiver.server_close()  # nobody listens any more
    with pytest.raises(NotificationFailed, match="could not be reached"):
        SlackWebhook.load("alerts").notify("boom")


def test_email_server_credentials_sends_to_the_smtp_server() -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        EmailServerCredentials(
            smtp_server="127.0.0.1", smtp_port=port, smtp_type="INSECURE", from_address="headwater@example.org",
            to_addresses=["ops@example.org", "oncall@example.org"],
        ).save("mail")  # fmt: skip
        EmailServerCredentials.load("mail").notify("the nightly load failed", subject="etl failed")
    finally:
        controller.stop()
    ((sender, recipients, content),) = inbox.messages
    assert sender == "headwater@example.org"
    assert recipients == ["ops@example.org", "oncall@example.org"]
    message = message_from_bytes(content)
    assert message["Subject"] == "etl failed"
    assert "the nightly load failed" in str(message.get_payload())
    # The server is gone: a clear error, not a bare socket error.
    with pytest.raises(NotificationFailed, match=f"SMTP server 127.0.0.1:{port}"):
        EmailServerCredentials.load("mail").notify("again")
