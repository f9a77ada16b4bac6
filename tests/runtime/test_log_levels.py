"""Run loggers log at HEADWATER_LOG_LEVEL (INFO by default) whatever the application did with
the root logger, and the application's own handlers see those lines. Each case runs in a
process of its own: logging is configured once per process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROGRAM = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="APP %(levelname)s %(message)s")
from headwater import flow, get_run_logger, task

@task(log_prints=True)
def shout():
    print("printed in a task")

@flow
def run():
    get_run_logger().info("info from the flow")
    shout()

run()
"""


def run_program(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "HEADWATER_HOME": str(tmp_path), **env}
    environment.pop("HEADWATER_LOG_LEVEL", None) if "HEADWATER_LOG_LEVEL" not in env else None
    return subprocess.run([sys.executable, "-c", PROGRAM], env=environment, capture_output=True, text=True, timeout=60)


def test_a_root_logger_at_warning_does_not_hide_run_info_lines(tmp_path: Path) -> None:
    out = run_program(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "APP INFO info from the flow" in out.stdout  # through the application's handler
    assert "APP INFO printed in a task" in out.stdout


def test_headwater_log_level_sets_the_run_loggers_level(tmp_path: Path) -> None:
    out = run_program(tmp_path, HEADWATER_LOG_LEVEL="warning")
    assert out.returncode == 0, out.stderr
    assert "info from the flow" not in out.stdout and "printed in a task" not in out.stdout


def test_a_level_that_is_not_one_says_so(tmp_path: Path) -> None:
    out = run_program(tmp_path, HEADWATER_LOG_LEVEL="LOUD")
    assert out.returncode != 0
    assert "HEADWATER_LOG_LEVEL='LOUD' is not a log level" in out.stderr
