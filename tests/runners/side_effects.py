"""Counting a task's executions across processes: a task on a worker appends its pid to a
file, so a test can say how many times (and where) it really ran."""

from __future__ import annotations

import os
from pathlib import Path


def count(path: Path) -> int:
    """Count one execution in `path`; returns how many there were, this one included."""
    with path.open("a") as file:
        file.write(f"{os.getpid()}\n")
    return len(path.read_text().split())


def executions(path: Path) -> list[int]:
    """The pids of the executions counted in `path`, in order."""
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []
