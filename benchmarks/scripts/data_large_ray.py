"""data-large on Ray, seen from the driver: one Ray task makes MIB MiB of bytes, another takes
them and returns their length. The flow (or the raw driver) asks only for the length, so the
bytes should never come here.

    python data_large_ray.py headwater|raw RAY_ADDRESS MIB

Joins the running Ray at RAY_ADDRESS as a new driver. ``headwater`` runs a flow on
``RayTaskRunner()`` (which finds Ray initialised and leaves it alone); ``raw`` passes the
producer's ``ObjectRef`` to the consumer's ``remote`` call. On one node Ray keeps the bytes in
its shared-memory object store and the consumer maps them from there, whichever worker process
runs it: no copy between workers, unlike Dask. What is measured is the trip through the object
store and what the driver holds meanwhile. One run with 1 KiB warms up (Ray starts this job's
workers; with recording on, the flow's embedded state service starts); one run with MIB MiB is
measured. Prints one JSON line (see `_rss.measure_run`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

import ray

from _rss import measure_run  # type: ignore[import-not-found, unused-ignore]  # a sibling file: run as a script


def produce(nbytes: int) -> bytes:
    return bytes(nbytes)


def consume(data: bytes) -> int:
    return len(data)


def headwater_hand_off() -> Callable[[int], int]:
    from headwater import flow, task
    from headwater.runners import RayTaskRunner

    produce_task, consume_task = task(produce), task(consume)

    @flow(task_runner=RayTaskRunner())
    def hand_off(nbytes: int) -> int:
        return int(consume_task.submit(produce_task.submit(nbytes)).result())

    return hand_off


def raw_hand_off() -> Callable[[int], int]:
    remote_produce, remote_consume = ray.remote(produce), ray.remote(consume)

    def hand_off(nbytes: int) -> int:
        return int(ray.get(remote_consume.remote(remote_produce.remote(nbytes))))

    return hand_off


def main() -> None:
    side, address, nbytes = sys.argv[1], sys.argv[2], int(sys.argv[3]) * 2**20
    # This job's workers get the scratch HEADWATER_HOME too, never the developer's.
    env_vars = {key: os.environ[key] for key in ("HEADWATER_HOME",) if key in os.environ}
    ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env_vars})
    hand_off = headwater_hand_off() if side == "headwater" else raw_hand_off()
    assert hand_off(1024) == 1024  # warm-up
    lengths: list[int] = []
    report = measure_run(lambda: lengths.append(hand_off(nbytes)))
    if lengths != [nbytes]:
        raise SystemExit(f"the consumer saw {lengths} bytes, not {nbytes}")
    print(json.dumps(report))
    ray.shutdown()


if __name__ == "__main__":
    main()
