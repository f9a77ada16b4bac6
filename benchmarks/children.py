"""Fresh child interpreters for the workloads that must not share the suite's process.

Cold start has to pay for interpreter start and imports; peak memory has to start from an
empty heap. Child scripts live in `benchmarks/scripts/`, are plain files a user can run, and
report through one JSON object on a line of stdout (the last such line counts).
"""

from __future__ import annotations

import atexit
import functools
import os
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).parent / "scripts"
CHILD_TIMEOUT_S = 600.0


class ChildFailed(RuntimeError):
    """A child interpreter exited with an error; the message carries its stderr tail."""


def script(name: str) -> Path:
    """Path of a child script in `benchmarks/scripts/`."""
    return SCRIPTS / name


@functools.cache
def scratch_home() -> str:
    """A HEADWATER_HOME for children that record, so benchmarks never touch ~/.headwater.

    One per suite process, kept across repeats: after the warm-up the state database exists,
    as it does for a user on every run but their first.
    """
    home = tempfile.mkdtemp(prefix="headwater-bench-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def run_python(
    args: list[str], *, python: str = sys.executable, env: Mapping[str, str] | None = None
) -> str:
    """Run ``python *args`` in a fresh process; return stdout or raise ChildFailed."""
    completed = subprocess.run(
        [python, *args],
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        cwd=SCRIPTS,  # not the repository root, so nothing is imported from the checkout by accident
        check=False,
    )
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-3:])
        raise ChildFailed(f"child exited with {completed.returncode}: {tail}")
    return completed.stdout


def run_json(
    args: list[str], *, python: str = sys.executable, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run a child script and parse the JSON object on its last line of stdout."""
    stdout = run_python(args, python=python, env=env)
    # The last line that looks like JSON: a runtime may still log after the child's report.
    reports = [line for line in stdout.splitlines() if line.startswith("{")]
    if not reports:
        raise ChildFailed(f"child printed no JSON report: {stdout[-200:]!r}")
    result: dict[str, Any] = json.loads(reports[-1])
    return result


def start_server(token: str, prefix: str) -> str:
    """A `headwater server start` process on a fresh scratch home, stopped at exit; its URL."""
    home = tempfile.mkdtemp(prefix=prefix)
    env = {**os.environ, "HEADWATER_HOME": home}
    env.pop("HEADWATER_API_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "headwater.cli", "server", "start", "--port", "0", "--token", token],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("grpc"):
        proc.kill()
        raise RuntimeError("headwater server did not start")
    atexit.register(proc.terminate)
    return url
