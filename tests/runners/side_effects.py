"""Counting across processes: a task on a worker appends its pid to a file each time it runs
(`count`), and a `Traced` value each time it is unpickled, so a test can say how many times,
and where, something really happened (`executions`)."""

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


def _unpickled(log: str, value: object) -> Traced:
    count(Path(log))
    return Traced(log, value)


class Traced:
    """A value that writes down the pid of every process that unpickles it (in `log`)."""

    def __init__(self, log: str, value: object) -> None:
        self.log, self.value = log, value

    def __reduce__(self) -> tuple[object, ...]:
        return _unpickled, (self.log, self.value)
