"""memory: peak RSS of a fresh interpreter whose flow runs N no-op tasks.

Each measurement is a new child process (`benchmarks/scripts/memory_*.py`) so no repeat
inherits another's heap. ``KiB/task`` is the peak minus the RSS just before the run, per task:
the memory a pending task and its future cost while the flow holds them.
"""

from __future__ import annotations

from benchmarks.children import run_json, script
from benchmarks.engines import RUNNER_CLASSES, require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, Workload

MIB = 2**20


def run(runner: str, n: int) -> Trial:
    require_headwater()  # fail soft with the import error here, not as a child's traceback
    args = [str(script("memory_headwater.py")), RUNNER_CLASSES[runner], str(n)]
    return lambda: run_json(args)


def baseline(engine: str, n: int) -> Trial:
    require_baseline(engine)
    args = [str(script("memory_threadpool.py")), str(n)]
    return lambda: run_json(args)


PEAK_RSS_MIB = Figure("peak_rss_mib", "MiB peak RSS", lambda raw, n: raw["peak_rss_bytes"] / MIB)
KIB_PER_TASK = Figure(
    "kib_per_task",
    "KiB/task",
    lambda raw, n: (raw["peak_rss_bytes"] - raw["rss_before_bytes"]) / 1024 / n,
)

WORKLOAD = Workload(
    name="memory",
    description="peak RSS of a fresh process running N no-op tasks in one flow",
    sizes={"tiny": 200, "quick": 20_000, "full": 100_000},
    run=run,
    baseline=baseline,
    figures=(PEAK_RSS_MIB, KIB_PER_TASK),
    warmup=False,  # every trial is a fresh process already
    order=70,
)
