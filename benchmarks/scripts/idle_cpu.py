"""Run one small flow, then sit idle for N seconds; report the process's CPU while idle.

    python idle_cpu.py SECONDS

With recording on (the default) the process keeps its recorder, heartbeat thread and, on the
embedded default, its state service: what they cost while nothing happens is the figure.
Prints one JSON line: {"cpu_ms_per_s": ..., "seconds": ...}.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from headwater import flow, task


@task
def one(i: int) -> int:
    return i


@flow
def small() -> int:
    return sum(one.map(range(3)).result())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    seconds = float(sys.argv[1])
    small()
    if seconds <= 0:  # just the flow (`flow-processes`): nothing to measure while idle
        print(json.dumps({"cpu_ms_per_s": 0.0, "seconds": 0.0}))
        sys.exit(0)
    time.sleep(0.5)  # let whatever the flow started settle
    before = cpu_seconds()
    time.sleep(seconds)
    spent = cpu_seconds() - before
    print(json.dumps({"cpu_ms_per_s": spent * 1e3 / seconds, "seconds": seconds}))
