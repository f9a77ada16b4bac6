"""Running the real `headwater` command for the CLI tests: in a subprocess with a pipe for
stdout, or on a pseudo-terminal of a given width."""

from __future__ import annotations

import json
import os
import pty
import re
import struct
import subprocess
import sys
from fcntl import ioctl
from termios import TIOCSWINSZ
from typing import Any

TOKEN = "cli-token"
#: The command as a user's shell runs it, but with the test's interpreter.
HEADWATER = [sys.executable, "-m", "headwater.cli"]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`headwater ARGV` with stdout and stderr piped, in this test's HEADWATER_HOME."""
    return subprocess.run([*HEADWATER, *argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def cli_json(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """`headwater ARGV --json`, which must succeed; its output parsed."""
    done = cli(*argv, "--json", env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def in_terminal(*argv: str, columns: int, env: dict[str, str] | None = None) -> str:
    """`headwater ARGV` on a pseudo-terminal `columns` wide; what it wrote, colours and cursor
    moves stripped."""
    master, slave = pty.openpty()
    ioctl(slave, TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    full_env = {**os.environ, **(env or {}), "COLUMNS": str(columns), "TERM": "xterm-256color"}
    proc = subprocess.Popen([*HEADWATER, *argv], stdin=slave, stdout=slave, stderr=slave, env=full_env)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        proc.wait(30)
    return _ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r\n", "\n")
