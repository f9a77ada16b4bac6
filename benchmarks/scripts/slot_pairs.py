"""One of `slots-pairs`' client processes: THREADS threads sharing this process's `SlotClient`
make acquire/release pairs of one limit on a standalone state service.

    python slot_pairs.py URL TOKEN LIMIT_NAME THREADS PAIRS_PER_THREAD

It connects, opens the grant stream and makes one pair per thread (untimed), prints
"ready", then waits for a line on stdin so every process starts at once; then each thread
makes its pairs. Prints one JSON line: {"end": time.monotonic() when the last pair ended,
"pairs": how many}; the parent times from the moment it said go (CLOCK_MONOTONIC is one clock
for every process of the machine).
"""

from __future__ import annotations

import json
import sys
import threading
import time

from headwater.api import SlotClient


def pairs(client: SlotClient, names: list[str], count: int) -> None:
    for _ in range(count):
        client.acquire(names).release()


def main() -> None:
    url, token, name = sys.argv[1:4]
    threads, per_thread = int(sys.argv[4]), int(sys.argv[5])
    names = [name]
    client = SlotClient(url, token=token)
    try:
        if name not in client.limited(names):
            raise SystemExit(f"no limit named {name!r} on {url}")
        warm = [threading.Thread(target=pairs, args=(client, names, 1)) for _ in range(threads)]
        for thread in warm:
            thread.start()
        for thread in warm:
            thread.join()
        print("ready", flush=True)
        sys.stdin.readline()
        workers = [threading.Thread(target=pairs, args=(client, names, per_thread)) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        end = time.monotonic()
    finally:
        client.close()
    print(json.dumps({"end": end, "pairs": threads * per_thread}), flush=True)


if __name__ == "__main__":
    main()
