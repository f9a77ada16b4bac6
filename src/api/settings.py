"""Configuration of the state service and its clients, read from the environment in one place.

Every knob is a `HEADWATER_*` environment variable (pydantic-settings). Read it with
`get_settings()`; it is re-read on every call so tests can change the environment freely.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .records import HEARTBEAT_INTERVAL

DEFAULT_PORT = 4200
DB_FILENAME = "headwater.db"


class Settings(BaseSettings):
    """`HEADWATER_HOME`, `HEADWATER_API_URL`, `HEADWATER_API_TOKEN`, TLS, logging, timeouts."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".headwater")
    api_url: str | None = None
    api_token: str | None = Field(default=None, repr=False)
    #: PEM file clients trust for `grpcs://` (the server's certificate or its CA).
    api_tls_ca: Path | None = None
    #: How long a process waits for an unreachable server when it first records into it.
    api_connect_timeout_seconds: float = 5.0
    log_level: str = "WARNING"
    #: How long the recorder keeps buffering for an unreachable server before giving up.
    recorder_grace_seconds: float = 30.0
    #: Most records the recorder holds in memory while the server is away (about 200 B each).
    recorder_max_buffered: int = 1_000_000
    #: Most log records a process buffers (`HEADWATER_LOGS_MAX_BUFFERED`); past it they are
    #: dropped, counted and told by a WARNING record (see `api/log_buffer.py`).
    logs_max_buffered: int = Field(default=100_000, gt=0)
    #: A RUNNING flow run with no heartbeat for this long is marked CRASHED by the server;
    #: at least `HEARTBEAT_TIMEOUT_FACTOR` heartbeat intervals (a server refuses less).
    heartbeat_timeout_seconds: float = 30.0
    #: How often a flow process heartbeats each running flow run. A server reads it too, to
    #: refuse a heartbeat timeout its clients could not meet: set the same value on both.
    heartbeat_interval_seconds: float = Field(default=HEARTBEAT_INTERVAL, gt=0)
    #: SQLite `synchronous` pragma; FULL fsyncs every group commit, NORMAL survives process crashes.
    db_synchronous: str = "FULL"
    #: Most bytes the result cache under `HEADWATER_HOME/cache` keeps; least recently used
    #: entries are evicted beyond it.
    cache_size_limit_bytes: int = Field(default=1 << 30, gt=0)
    #: How long a concurrency slot outlives its holder: held slots are renewed every third of
    #: it, so a process that dies frees its slots within this time.
    slot_lease_seconds: float = Field(default=30.0, gt=0)
    #: Where a state service commits: `auto` moves its database writes to a process of their
    #: own once it is busy and a second CPU is free (`api/writer_process.py`); `always`,
    #: `never`.
    writer_process: Literal["auto", "always", "never"] = "auto"

    @property
    def db_path(self) -> Path:
        return self.home.expanduser() / DB_FILENAME


def get_settings() -> Settings:
    return Settings()
