"""The block types headwater ships: `Secret`, `JSON`, `LocalFileSystem`, `RemoteFileSystem`,
`SlackWebhook` and `EmailServerCredentials`, under Prefect's slugs (`secret`, `json`,
`local-file-system`, `remote-file-system`, `slack-webhook`, `email-server-credentials`).

Both filesystems carry a `basepath`, so either one is usable as a task's `result_storage`.
The notification blocks' `.notify(body, subject=None)` raise `NotificationFailed` when the
message is refused or cannot be sent; the error never shows a secret (a Slack webhook's URL
is its secret).
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr

from ..errors import NotificationFailed
from .core import Block
from .fs import read_url, write_url
from .secret_types import SecretDict, SecretJSON

NOTIFY_TIMEOUT = 10.0
_BODY_SHOWN = 200


class Secret(Block):
    """A secret value: text, or any JSON value (`Secret(value={"user": ..., "token": ...})`).
    `Secret(value="x").save("name")`, then `Secret.load("name").get()`."""

    value: SecretStr | SecretJSON = Field(union_mode="left_to_right")

    def get(self) -> Any:
        """The plain value: a str for text, else the JSON value it was given."""
        return self.value.get_secret_value()


class JSON(Block):
    """Any JSON value, not secret."""

    value: Any


class LocalFileSystem(Block):
    """A directory on this machine; paths are relative to `basepath` and stay inside it."""

    basepath: str

    def _full(self, path: str) -> Path:
        base = Path(self.basepath).expanduser().resolve()
        full = (base / path).resolve()
        if not full.is_relative_to(base):
            raise ValueError(f"path {path!r} is outside the block's basepath {str(base)!r}")
        return full

    def read_path(self, path: str) -> bytes:
        return read_url(str(self._full(path)), {})

    def write_path(self, path: str, content: bytes) -> None:
        write_url(str(self._full(path)), content, {})


class RemoteFileSystem(Block):
    """An fsspec URL (`s3://bucket/prefix`, `gcs://...`, `memory://...`); `settings` are the
    filesystem's options (credentials, endpoint), all kept secret."""

    basepath: str
    settings: SecretDict = Field(default_factory=SecretDict)

    def _url(self, path: str) -> str:
        return f"{self.basepath.rstrip('/')}/{path.lstrip('/')}"

    def read_path(self, path: str) -> bytes:
        return read_url(self._url(path), self.settings.get_secret_value())

    def write_path(self, path: str, content: bytes) -> None:
        write_url(self._url(path), content, self.settings.get_secret_value())


class SlackWebhook(Block):
    """A Slack incoming webhook: `notify` posts `{"text": ...}` to its (secret) URL."""

    url: SecretStr

    def notify(self, body: str, subject: str | None = None) -> None:
        text = f"*{subject}*\n{body}" if subject else body
        request = urllib.request.Request(
            self.url.get_secret_value(), data=json.dumps({"text": text}).encode("utf-8"),
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        who = f"Slack webhook {self.block_document_name or '(unsaved)'!r}"
        try:
            with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            shown = exc.read()[:_BODY_SHOWN].decode("utf-8", "replace")
            raise NotificationFailed(f"{who} answered HTTP {exc.code}: {shown}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotificationFailed(f"{who} could not be reached: {type(exc).__name__}: {reason}") from None


class EmailServerCredentials(Block):
    """An SMTP server and who to write to: `notify` sends one message to `to_addresses`.
    `smtp_type`: "SSL" (TLS from the start, port 465), "STARTTLS" (port 587) or "INSECURE"
    (no TLS: a local relay only). Logs in when `username` is set."""

    username: str = ""
    password: SecretStr = SecretStr("")
    smtp_server: str
    smtp_port: int = 465
    smtp_type: Literal["SSL", "STARTTLS", "INSECURE"] = "SSL"
    from_address: str | None = None
    to_addresses: list[str]

    def notify(self, body: str, subject: str | None = None) -> None:
        message = EmailMessage()
        message["From"] = self.from_address or self.username
        message["To"] = ", ".join(self.to_addresses)
        message["Subject"] = subject or "headwater notification"
        message.set_content(body)
        where = f"SMTP server {self.smtp_server}:{self.smtp_port}"
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self.password.get_secret_value())
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise NotificationFailed(f"{where} refused the message: {type(exc).__name__}: {exc}") from exc

    def _connect(self) -> smtplib.SMTP:
        if self.smtp_type == "SSL":
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(self.smtp_server, self.smtp_port, timeout=NOTIFY_TIMEOUT, context=context)
        smtp = smtplib.SMTP(self.smtp_server, self.smtp_port, timeout=NOTIFY_TIMEOUT)
        if self.smtp_type == "STARTTLS":
            smtp.starttls(context=ssl.create_default_context())
        return smtp
