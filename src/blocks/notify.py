"""The `send-notification` automation action's sender: load the named block as it is now,
secrets decrypted with this process's key (`keys.py`), and call its `notify(body, subject)`.

The automation loop runs inside the state service, which must not import blocks; the process
hosting it installs this sender (`install_notifier`): `headwater server start`, and every
worker or `serve` process (which host the loop on the embedded default). Documents are read
through the `read` it is handed, the service's own store, never through a client that could
start a second service. Any block type with a `notify(body, subject)` method qualifies:
`SlackWebhook`, `EmailServerCredentials`, or a user's own class imported in that process.
"""

from __future__ import annotations

from ..errors import NotificationFailed
from . import builtins as _builtins  # noqa: F401 - registers the built-in notification blocks
from .core import ReadDocument, block_class


def send_notification(slug: str, name: str, body: str, subject: str, read: ReadDocument) -> None:
    """Send `body` under `subject` through the block `slug/name`; raises `NotificationFailed`
    (naming the block, never a secret) when it cannot."""
    cls = block_class(slug)
    if cls is None:
        raise NotificationFailed(
            f"block '{slug}/{name}': no block type {slug!r} is defined in the process running automations; "
            f"use a slack-webhook or email-server-credentials block, or import the module defining {slug!r} there"
        )
    if not callable(getattr(cls, "notify", None)):
        raise NotificationFailed(
            f"block '{slug}/{name}' is a {cls.__qualname__}, which cannot send notifications (it has no "
            f"notify(body, subject) method); name a slack-webhook or email-server-credentials block"
        )
    cls._load(name, (), read).notify(body, subject)  # type: ignore[attr-defined]


def install_notifier() -> None:
    """Make this process's automation loop send notifications through blocks."""
    from ..api.automation_actions import set_notifier

    set_notifier(send_notification)
