"""A filesystem block is usable as a task's `result_storage` (the caching issue's hook)."""

from __future__ import annotations

from pathlib import Path

from headwater import flow, task
from headwater.blocks import LocalFileSystem
from headwater.cache import INPUTS


def test_a_saved_local_file_system_block_holds_a_tasks_cached_values(tmp_path: Path) -> None:
    LocalFileSystem(basepath=str(tmp_path / "results")).save("results")
    calls: list[int] = []

    @task(cache_policy=INPUTS, result_storage=LocalFileSystem.load("results"))
    def double(x: int) -> int:
        calls.append(x)
        return x * 2

    @flow
    def twice() -> tuple[int, int]:
        return double(21), double(21)

    assert twice() == (42, 42) and calls == [21]
    (stored,) = list((tmp_path / "results").iterdir())
    assert stored.is_file()
