"""Shared helpers for the state service tests: real servers, real processes, no mocks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from headwater.api import FlowRunRecord, StateRecord, TaskRunRecord

PYTHON = sys.executable


def flow(name: str = "demo", **kw: Any) -> FlowRunRecord:
    return FlowRunRecord(uuid.uuid4(), f"{name}-run", name, kw.pop("parameters", {"x": 1}),
                         created=time.time(), **kw)


def task(flow_run_id: uuid.UUID | None, name: str = "t", **kw: Any) -> TaskRunRecord:
    return TaskRunRecord(uuid.uuid4(), flow_run_id, f"{name}-0", name, created=time.time(), **kw)


def state(run_id: uuid.UUID, type_: str, kind: str = "flow", **kw: Any) -> StateRecord:
    name = kw.pop("name", type_.title())
    return StateRecord(run_id, kind, type_, name, kw.pop("message", None),  # type: ignore[arg-type]
                       kw.pop("timestamp", time.time()), kw.pop("transition_id", uuid.uuid4()), **kw)


def start_server_process(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """`python -m headwater.cli server start` in its own process; returns it and its URL."""
    full_env = {**os.environ, "HEADWATER_HOME": str(home), **(env or {})}
    full_env.pop("HEADWATER_API_URL", None)
    proc = subprocess.Popen(
        [PYTHON, "-m", "headwater.cli", "server", "start", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("grpc"):
        proc.kill()
        raise AssertionError(f"server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, line


def stop_process(proc: subprocess.Popen[str], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
