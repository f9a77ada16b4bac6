"""Run logs land in the state service with their run ids: from the flow, worker threads,
async tasks, subflows, extra loggers, and a process that exits right after its flow."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater import flow, get_run_logger, task
from headwater.api import StateClient, recorder_target
from headwater.runners import ConcurrentTaskRunner
from headwater.runtime import log_capture


@pytest.fixture(autouse=True)
def _run_logs_at_info() -> Iterator[None]:
    logger = logging.getLogger("headwater")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def lines_of(flow_run_id: Any, expect: int, timeout: float = 10.0) -> list[Any]:
    """The run's stored lines, once at least `expect` of them arrived."""
    url, token, _ = recorder_target()
    deadline = time.monotonic() + timeout
    with StateClient(url, token=token) as client:
        while True:
            page = client.read_logs(flow_run_id, limit=10_000)
            if len(page.lines) >= expect or time.monotonic() > deadline:
                return list(page.lines)
            time.sleep(0.05)


def _stored_lines_of_the_run(code: str, env: dict[str, str]) -> list[dict[str, Any]]:
    """Run `code` (one flow) in a process of its own, then read its flow run's stored lines
    with the console command in another, as `--json` rows."""
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=120)
    out = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "runs", "ls", "--json"], env=env, check=True, capture_output=True, text=True
    )
    run_id = json.loads(out.stdout)[0]["id"]
    logs = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "runs", "logs", run_id, "--json"], env=env, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    return [json.loads(line) for line in logs.stdout.splitlines()]


def test_lines_from_the_flow_its_tasks_async_tasks_and_subflows_carry_their_runs() -> None:
    @task
    def in_thread(i: int) -> None:
        get_run_logger().info("thread line %d", i)

    @task
    async def in_async() -> None:
        get_run_logger().warning("async line")

    @flow
    def child() -> None:
        get_run_logger().info("subflow line")

    @flow(task_runner=ConcurrentTaskRunner())
    def parent() -> Any:
        get_run_logger().info("flow line")
        in_thread.map(range(3)).wait()
        asyncio.run(in_async())
        child()
        from headwater.runtime.context import flow_run_var

        return flow_run_var.get().flow_run.id  # type: ignore[union-attr]

    run_id = parent()
    lines = lines_of(run_id, 6)
    messages = {line.message: line for line in lines}
    assert {"flow line", "thread line 0", "thread line 1", "thread line 2", "async line", "subflow line"} <= set(messages)
    assert messages["flow line"].task_run_id is None
    assert messages["thread line 1"].task_run_id is not None and messages["thread line 1"].label.startswith("in_thread")
    assert messages["async line"].level == logging.WARNING


def test_an_extra_logger_is_attached_to_the_run_it_logs_in() -> None:
    log_capture.install("a-library")
    library = logging.getLogger("a-library")
    library.setLevel(logging.INFO)

    @task
    def calls_library() -> None:
        library.info("from the library")

    @flow
    def run() -> Any:
        calls_library()
        from headwater.runtime.context import flow_run_var

        return flow_run_var.get().flow_run.id  # type: ignore[union-attr]

    lines = [line for line in lines_of(run(), 3) if line.message == "from the library"]
    assert len(lines) == 1 and lines[0].task_run_id is not None and lines[0].logger == "a-library"


def test_an_exception_is_stored_with_its_traceback() -> None:
    @task
    def fails() -> None:
        raise ValueError("broken on purpose")

    @flow
    def run() -> Any:
        fails(return_state=True)
        from headwater.runtime.context import flow_run_var

        return flow_run_var.get().flow_run.id  # type: ignore[union-attr]

    lines = lines_of(run(), 3)
    errors = [line for line in lines if line.exception and "broken on purpose" in line.exception]
    assert errors and "Traceback" in errors[0].exception


def test_nothing_is_lost_when_the_process_exits_after_its_flow(tmp_path: Path) -> None:
    code = (
        "from headwater import flow, get_run_logger\n"
        "@flow\n"
        "def chatty():\n"
        "    log = get_run_logger()\n"
        "    for i in range(2000): log.info('line %d', i)\n"
        "chatty()\n"
    )
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path)}
    env.pop("HEADWATER_API_URL", None)
    messages = [line["message"] for line in _stored_lines_of_the_run(code, env)]
    assert [m for m in messages if m.startswith("line ")] == [f"line {i}" for i in range(2000)]


def test_a_second_process_records_its_lines_and_an_extra_loggers_through_a_standalone_server(tmp_path: Path) -> None:
    from tests.api.helpers import start_server_process, stop_process

    proc, url = start_server_process(tmp_path / "server-home", "--token", "logs-token")
    try:
        code = (
            "import logging, sys\n"
            "from headwater import flow, task, get_run_logger\n"
            "@task\n"
            "def step():\n"
            "    get_run_logger().warning('from the second process')\n"
            "    logging.getLogger('thirdparty').warning('from a library')\n"
            "@flow\n"
            "def remote():\n"
            "    step()\n"
            "    from headwater.runtime.context import flow_run_var\n"
            "    print(flow_run_var.get().flow_run.id)\n"
            "remote()\n"
        )
        env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "client-home"), "HEADWATER_API_URL": url,
               "HEADWATER_API_TOKEN": "logs-token", "HEADWATER_LOGGING_EXTRA_LOGGERS": "thirdparty"}  # fmt: skip
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        run_id = out.stdout.strip().splitlines()[-1]
        with StateClient(url, token="logs-token") as client:
            lines = client.read_logs(run_id).lines
        ours = [line for line in lines if line.message == "from the second process"]
        assert len(ours) == 1 and ours[0].task_run_id is not None and ours[0].level == logging.WARNING
        library = [line for line in lines if line.logger == "thirdparty"]  # an extra logger, by env
        assert [line.message for line in library] == ["from a library"]
        assert library[0].task_run_id == ours[0].task_run_id
    finally:
        stop_process(proc)


def test_a_storm_keeps_the_runs_warnings_and_closing_lines(tmp_path: Path) -> None:
    code = (
        "import time, threading\n"
        "from headwater import flow, task, get_run_logger\n"
        "from headwater.runners import ConcurrentTaskRunner\n"
        "storming = threading.Event()\n"
        "@task\n"
        "def storm():\n"
        "    log = get_run_logger()\n"
        "    storming.set()\n"
        "    for i in range(50_000): log.info('storm %d', i)\n"
        "@task\n"
        "def failing():\n"
        "    storming.wait(); time.sleep(0.05)\n"
        "    for i in range(20): get_run_logger().warning('warning %d', i); time.sleep(0.001)\n"
        "    raise ValueError('during the storm')\n"
        "@flow(task_runner=ConcurrentTaskRunner())\n"
        "def stormy():\n"
        "    s, f = storm.submit(), failing.submit()\n"
        "    f.wait(); s.wait()\n"
        "stormy()\n"
    )
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path), "HEADWATER_LOGS_MAX_BUFFERED": "200"}
    env.pop("HEADWATER_API_URL", None)
    lines = _stored_lines_of_the_run(code, env)
    messages = [ln["message"] for ln in lines]
    storm = [m for m in messages if m.startswith("storm ")]
    assert len(storm) < 50_000 and any(ln["logger"] == "headwater.logs" for ln in lines)  # it dropped
    assert [m for m in messages if m.startswith("warning ")] == [f"warning {i}" for i in range(20)]
    assert any(m.startswith("Finished in state Failed") and "during the storm" in m for m in messages)
    assert messages.index("warning 19") < messages.index(storm[-1])  # kept while the storm went on
