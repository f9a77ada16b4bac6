"""Runs N no-op tasks in one headwater flow, then prints RSS before and peak RSS as JSON.

    python memory_headwater.py RunnerClassName N
"""

import json
import sys

from _rss import current_rss_bytes, peak_rss_bytes  # type: ignore[import-not-found, unused-ignore]  # a sibling file: run as a script
from headwater import flow, runners, task, wait


@task
def noop(x: object = None) -> object:
    return x


def main() -> None:
    runner_class, n = getattr(runners, sys.argv[1]), int(sys.argv[2])

    @flow(task_runner=runner_class())
    def many(count: int) -> int:
        futures = [noop.submit(i) for i in range(count)]
        wait(futures)
        return len(futures)

    before = current_rss_bytes()  # after imports: the run's growth is what we attribute to it
    many(n)
    print(json.dumps({"rss_before_bytes": before, "peak_rss_bytes": peak_rss_bytes()}))


if __name__ == "__main__":
    main()
