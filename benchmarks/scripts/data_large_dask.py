"""data-large on Dask, seen from the process that drives it: a task on one worker makes MIB MiB
of bytes, a task on the other worker takes them and returns their length. The flow (or the raw
client) asks only for the length, so the bytes should never come here.

    python data_large_dask.py headwater|raw SCHEDULER_ADDRESS MIB

``headwater`` runs a flow on ``DaskTaskRunner(address=...)``, pinning each task to its worker
with ``dask.annotate(workers=[...])`` around ``.submit``; ``raw`` does the same two
``Client.submit`` calls with ``workers=``. Each side opens its client per run (the runner does
so per flow run). One run with 1 KiB warms up imports, connections and, with recording on,
the embedded state service; then one run with MIB MiB is measured. Prints one JSON line (see
`_rss.measure_run`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from dask.base import annotate
from distributed import Client

from _rss import measure_run  # type: ignore[import-not-found, unused-ignore]  # a sibling file: run as a script


def produce(nbytes: int) -> bytes:
    return bytes(nbytes)


def consume(data: bytes) -> int:
    return len(data)


def two_workers(address: str) -> tuple[str, str]:
    with Client(address) as client:
        workers = sorted(client.scheduler_info()["workers"])
    if len(workers) < 2:
        raise SystemExit(f"data-large needs two Dask workers, the cluster has {len(workers)}")
    return workers[0], workers[1]


def headwater_hand_off(address: str, producer_at: str, consumer_at: str) -> Callable[[int], int]:
    from headwater import flow, task, wait
    from headwater.runners import DaskTaskRunner

    produce_task, consume_task = task(produce), task(consume)

    @flow(task_runner=DaskTaskRunner(address=address))
    def hand_off(nbytes: int) -> int:
        with annotate(workers=[producer_at]):
            made = produce_task.submit(nbytes)
        # Hand the consumer to Dask inside its block: one submitted while its upstream still
        # runs is handed over later, outside it (see DaskTaskRunner's docstring).
        wait([made])
        with annotate(workers=[consumer_at]):
            taken = consume_task.submit(made)
        return int(taken.result())

    return hand_off


def raw_hand_off(address: str, producer_at: str, consumer_at: str) -> Callable[[int], int]:
    def hand_off(nbytes: int) -> int:
        with Client(address) as client:
            made = client.submit(produce, nbytes, workers=[producer_at], pure=False)
            taken = client.submit(consume, made, workers=[consumer_at], pure=False)
            return int(taken.result())

    return hand_off


def main() -> None:
    side, address, nbytes = sys.argv[1], sys.argv[2], int(sys.argv[3]) * 2**20
    make = headwater_hand_off if side == "headwater" else raw_hand_off
    hand_off = make(address, *two_workers(address))
    assert hand_off(1024) == 1024  # warm-up
    lengths: list[int] = []
    report = measure_run(lambda: lengths.append(hand_off(nbytes)))
    if lengths != [nbytes]:
        raise SystemExit(f"the consumer saw {lengths} bytes, not {nbytes}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
