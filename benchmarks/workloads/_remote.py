"""What the Dask and Ray workloads share: their targets and the data-large measurement.

Targets (issue #9), with recording on: throughput and chain latency within 1.5x of the raw
engine (`ratio_target`), and a flow process whose peak RSS does not grow with the data its
tasks move: data-large adds under 10 MiB to it.

data-large runs each measurement in a fresh driver process (`benchmarks/scripts/
data_large_*.py`) that joins the suite's cluster or Ray, warms up with 1 KiB, then moves N MiB
from one task to another and reports its own RSS: before, at peak (reset just before the run
where Linux allows) and after. Both sides pay the same interpreter, imports and connection;
only the run is measured.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from benchmarks.children import run_json, scratch_home, script
from benchmarks.workload import LATENCY, SECONDS, THROUGHPUT, Figure, Trial
from benchmarks.workloads._shared import count, noop
from benchmarks.workloads.data import MIB_PER_S, MS_PER_HANDOFF

RATIO_TARGET = 1.5  # within 1.5x of the raw engine
ADDED_RSS_TARGET_MIB = 10.0
MIB = 2**20

THROUGHPUT_TARGETED = tuple(replace(f, ratio_target=RATIO_TARGET) for f in THROUGHPUT)
LATENCY_TARGETED = tuple(replace(f, ratio_target=RATIO_TARGET) for f in LATENCY)

ADDED_RSS_MIB = Figure(
    "added_rss_mib",
    "MiB RSS added",  # to the flow process (headwater) or the driver (raw)
    lambda raw, n: (raw["peak_rss_bytes"] - raw["rss_before_bytes"]) / MIB,
    target=ADDED_RSS_TARGET_MIB,
)
KEPT_RSS_MIB = Figure(
    "kept_rss_mib",
    "MiB RSS kept",  # still resident once the run returned: what a leak would look like
    lambda raw, n: (raw["rss_after_bytes"] - raw["rss_before_bytes"]) / MIB,
    in_table=False,
)
DATA_LARGE_FIGURES: tuple[Figure, ...] = (
    ADDED_RSS_MIB,
    MS_PER_HANDOFF,
    MIB_PER_S,
    KEPT_RSS_MIB,
    SECONDS,
)


def data_large_trial(script_name: str, side: str, address: str, mebibytes: int) -> Trial:
    """A trial running one data-large driver (``side``: "headwater" or "raw") in a child."""
    args = [str(script(script_name)), side, address, str(mebibytes)]
    env = {**os.environ, "HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()}
    return lambda: run_json(args, env=env)


def map_body(n: int) -> Callable[[], None]:
    """A flow body mapping N no-op tasks and bringing their values back."""
    from headwater import task

    noop_task = task(noop)

    def map_many() -> None:
        noop_task.map(range(n)).result()

    return map_many


def fanout_body(n: int) -> Callable[[], None]:
    """A flow body fanning out to N no-op tasks and in to one task given all their futures."""
    from headwater import task

    noop_task, count_task = task(noop), task(count)

    def fan_out_in() -> None:
        branches = [noop_task.submit(i) for i in range(n)]
        count_task.submit(branches).result()  # a list of futures: all of them are upstream

    return fan_out_in
