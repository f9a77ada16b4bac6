"""What the figures were measured on: CPU, memory, OS, Python, package versions, date, commit."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("headwater", "dask", "distributed", "ray", "prefect", "rich", "psutil", "matplotlib")


def machine_info() -> dict[str, Any]:
    """A JSON-ready description of this machine and interpreter."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_bytes": memory_bytes(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "git_dirty_src": git_dirty_src(),
    }


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else whatever platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    """Total physical memory, from psutil when installed, else /proc/meminfo."""
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]

        return int(psutil.virtual_memory().total)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that matter to the figures; absent ones are left out."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    """The checkout's commit, so a result can be tied to the code that produced it."""
    return _git("rev-parse", "--short", "HEAD") or None


def git_dirty_src() -> bool | None:
    """Whether tracked files under src/ differ from the commit (the measured code is then not it)."""
    changes = _git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return None if changes is None else bool(changes)


def _git(*args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).parent.parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None
