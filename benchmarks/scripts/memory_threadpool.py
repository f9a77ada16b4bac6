"""Baseline: N no-op tasks on a raw ThreadPoolExecutor, then RSS before and peak RSS as JSON.

    python memory_threadpool.py N
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor, wait

from _rss import current_rss_bytes, peak_rss_bytes  # type: ignore[import-not-found, unused-ignore]  # a sibling file: run as a script


def noop(x: object = None) -> object:
    return x


def main() -> None:
    n = int(sys.argv[1])
    before = current_rss_bytes()
    with ThreadPoolExecutor() as pool:
        futures = [pool.submit(noop, i) for i in range(n)]
        wait(futures)
    print(json.dumps({"rss_before_bytes": before, "peak_rss_bytes": peak_rss_bytes()}))


if __name__ == "__main__":
    main()
