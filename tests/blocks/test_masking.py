"""A secret loaded in this process is masked in the run logs and parameters it records."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from headwater import flow, get_run_logger, task
from headwater.api import StateClient, recorder_target
from headwater.blocks import Secret
from headwater.runtime import secret_masking
from headwater.runtime.context import flow_run_var
from headwater.runtime.recording import json_safe


@pytest.fixture(autouse=True)
def _run_logs_at_info() -> Iterator[None]:
    logger = logging.getLogger("headwater")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def test_mask_replaces_remembered_values_longest_first_and_skips_short_ones() -> None:
    assert not secret_masking.masking_active()
    assert secret_masking.mask("nothing to hide") == "nothing to hide"
    secret_masking.remember_secret("abc")  # too short to mask
    secret_masking.remember_secret("token-1")
    secret_masking.remember_secret("token-1-long")
    assert secret_masking.mask("a token-1-long and token-1, abc") == "a ******** and ********, abc"
    assert json_safe({"p": "x token-1 y", "n": 3, "o": object}) == {"p": "x ******** y", "n": 3, "o": "<class 'object'>"}


def _stored(flow_run_id: UUID, needle: str, timeout: float = 10.0) -> list[str]:
    url, token, _ = recorder_target()
    deadline = time.monotonic() + timeout
    with StateClient(url, token=token) as client:
        while True:
            messages = [line.message for line in client.read_logs(flow_run_id, limit=10_000).lines]
            if any(needle in m for m in messages) or time.monotonic() > deadline:
                return messages


def test_a_secret_a_task_loads_and_logs_is_masked_in_the_stored_line() -> None:
    Secret(value="sk-live-0123456789").save("api-key")

    @task
    def use_it() -> None:
        value = Secret.load("api-key").get()
        get_run_logger().info("calling the API with %s", value)

    @flow
    def uses_a_secret() -> Any:
        use_it()
        run = flow_run_var.get()
        assert run is not None
        return run.flow_run.id

    flow_run_id = uses_a_secret()
    messages = _stored(flow_run_id, "calling the API")
    assert "calling the API with ********" in messages
    assert not any("sk-live-0123456789" in m for m in messages)


def test_a_secret_given_as_a_parameter_is_masked_in_the_recorded_parameters() -> None:
    Secret(value="pg-pass-4242").save("pg")
    password = Secret.load("pg").get()

    @flow
    def connects(dsn: str, options: dict[str, Any]) -> Any:
        run = flow_run_var.get()
        assert run is not None
        return run.flow_run.id

    flow_run_id = connects(f"postgresql://app:{password}@db/app", {"password": password, "port": 5432})
    url, token, _ = recorder_target()
    with StateClient(url, token=token) as client:
        parameters = client.read_flow_run(flow_run_id).parameters
    assert parameters == {"dsn": "postgresql://app:********@db/app", "options": {"password": "********", "port": 5432}}
