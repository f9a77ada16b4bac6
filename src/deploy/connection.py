"""Where deployment calls go: the server at `HEADWATER_API_URL`, or on the embedded default
this process's own state service (started on first use, as a flow starts it), which writes
the database every process on the home shares and rings the doorbells of the workers there."""

from __future__ import annotations

from pathlib import Path

from ..api.client import Target
from ..api.deploy_client import DeployClient
from ..api.process_recorders import recorder_target
from ..api.settings import get_settings


def service_target() -> Target:
    settings = get_settings()
    if settings.api_url:
        return Target.resolve(settings.api_url, settings.api_token, settings.api_tls_ca)
    url, token, tls_ca = recorder_target()
    return Target.resolve(url, token, Path(tls_ca) if tls_ca else None)


def deploy_client(*, timeout: float = 10.0, retry_for: float = 30.0) -> DeployClient:
    return DeployClient(service_target(), timeout=timeout, retry_for=retry_for)
